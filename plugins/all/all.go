// Package all is the one list of plugins compiled into telegraf-tkgi, stock
// and own. Adding a plugin is one import line here.
package all

import (
	// Inputs.
	_ "github.com/influxdata/telegraf/plugins/inputs/cpu"
	_ "github.com/influxdata/telegraf/plugins/inputs/disk"
	_ "github.com/influxdata/telegraf/plugins/inputs/diskio"
	_ "github.com/influxdata/telegraf/plugins/inputs/exec"
	_ "github.com/influxdata/telegraf/plugins/inputs/file"
	_ "github.com/influxdata/telegraf/plugins/inputs/http_listener_v2"
	_ "github.com/influxdata/telegraf/plugins/inputs/influxdb_listener"
	_ "github.com/influxdata/telegraf/plugins/inputs/kernel"
	_ "github.com/influxdata/telegraf/plugins/inputs/kube_inventory"
	_ "github.com/influxdata/telegraf/plugins/inputs/kubernetes"
	_ "github.com/influxdata/telegraf/plugins/inputs/mem"
	_ "github.com/influxdata/telegraf/plugins/inputs/net"
	_ "github.com/influxdata/telegraf/plugins/inputs/processes"
	_ "github.com/influxdata/telegraf/plugins/inputs/prometheus"
	_ "github.com/influxdata/telegraf/plugins/inputs/system"

	// Outputs.
	_ "github.com/influxdata/telegraf/plugins/outputs/datadog"
	_ "github.com/influxdata/telegraf/plugins/outputs/discard"
	_ "github.com/influxdata/telegraf/plugins/outputs/file"
	_ "github.com/influxdata/telegraf/plugins/outputs/health"
	_ "github.com/influxdata/telegraf/plugins/outputs/http"
	_ "github.com/influxdata/telegraf/plugins/outputs/influxdb"
	_ "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"
	_ "github.com/influxdata/telegraf/plugins/outputs/kafka"
	_ "github.com/influxdata/telegraf/plugins/outputs/prometheus_client"
	_ "github.com/influxdata/telegraf/plugins/outputs/wavefront"

	// Processors.
	_ "github.com/influxdata/telegraf/plugins/processors/converter"
	_ "github.com/influxdata/telegraf/plugins/processors/dedup"
	_ "github.com/influxdata/telegraf/plugins/processors/enum"
	_ "github.com/influxdata/telegraf/plugins/processors/override"
	_ "github.com/influxdata/telegraf/plugins/processors/regex"
	_ "github.com/influxdata/telegraf/plugins/processors/rename"
	_ "github.com/influxdata/telegraf/plugins/processors/strings"
	_ "github.com/influxdata/telegraf/plugins/processors/tag_limit"

	// Aggregators.
	_ "github.com/influxdata/telegraf/plugins/aggregators/basicstats"

	// Parsers.
	_ "github.com/influxdata/telegraf/plugins/parsers/influx"
	_ "github.com/influxdata/telegraf/plugins/parsers/json"
	_ "github.com/influxdata/telegraf/plugins/parsers/prometheus"
	_ "github.com/influxdata/telegraf/plugins/parsers/prometheusremotewrite"

	// Serializers.
	_ "github.com/influxdata/telegraf/plugins/serializers/influx"
	_ "github.com/influxdata/telegraf/plugins/serializers/json"
	_ "github.com/influxdata/telegraf/plugins/serializers/prometheus"
	_ "github.com/influxdata/telegraf/plugins/serializers/prometheusremotewrite"

	// Secret stores (those that build without cgo and fit a Kubernetes
	// agent or its server).
	_ "github.com/influxdata/telegraf/plugins/secretstores/docker"
	_ "github.com/influxdata/telegraf/plugins/secretstores/http"
	_ "github.com/influxdata/telegraf/plugins/secretstores/jose"
	_ "github.com/influxdata/telegraf/plugins/secretstores/os"
	_ "github.com/influxdata/telegraf/plugins/secretstores/systemd"

	// telegraf-tkgi's own plugins.
	_ "github.com/telegraf-tkgi/telegraf-tkgi/plugins/inputs/kube_telemetry"
	_ "github.com/telegraf-tkgi/telegraf-tkgi/plugins/inputs/telegraf_internal"
	_ "github.com/telegraf-tkgi/telegraf-tkgi/plugins/inputs/vmware_telemetry_listener"
	_ "github.com/telegraf-tkgi/telegraf-tkgi/plugins/inputs/vmware_telemetry_stream"
	_ "github.com/telegraf-tkgi/telegraf-tkgi/plugins/outputs/vmware_telemetry"
)
