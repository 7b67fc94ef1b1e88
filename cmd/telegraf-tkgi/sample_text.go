package main

// The text of the global sections of `telegraf-tkgi config`. Written for
// this project; option names and defaults are those of Telegraf's agent.

const headerText = `# telegraf-tkgi configuration
#
# telegraf-tkgi reads the same TOML as telegraf. Sections:
#   [global_tags]   tags added to every metric
#   [agent]         collection and flush timing, buffering, logging
#   [[outputs.*]]   where metrics go          [[processors.*]] transform metrics
#   [[aggregators.*]] summarise over a period [[inputs.*]]     where metrics come from
#
# Values may reference environment variables as "${NAME}" (strings only,
# unless --non-strict-env-handling is given). Print a single plugin's options
# with: telegraf-tkgi --usage NAME
`

const globalTagsText = `

# Tags added to every metric this agent emits.
[global_tags]
  ## For example:
  # environment = "production"
  # cluster = "$CLUSTER_NAME"
`

const agentText = `

# Agent-wide settings.
[agent]
  ## How often inputs gather.
  interval = "10s"
  ## Align gathering to the clock (10s interval: :00, :10, :20 ...).
  round_interval = true

  ## Outputs receive metrics in batches of at most this size.
  metric_batch_size = 1000
  ## Per output, the number of metrics kept while an output cannot write.
  ## When full, the oldest metrics are dropped; size it to cover the
  ## longest outage you want to ride out.
  metric_buffer_limit = 10000
  ## "memory" (default) or "disk": a disk buffer keeps unsent metrics across
  ## restarts in buffer_directory.
  # buffer_strategy = "memory"
  # buffer_directory = ""

  ## Random delay before each gather, spreading load from many agents.
  collection_jitter = "0s"
  ## Offset of the gather from the aligned interval.
  # collection_offset = "0s"

  ## How often outputs write, and a random delay added to each flush.
  flush_interval = "10s"
  flush_jitter = "0s"

  ## Timestamp precision; empty means it follows the interval.
  precision = "0s"

  ## Logging: debug or quiet (errors only) verbosity; "text" or
  ## "structured" format; a file (empty: stderr) with optional rotation.
  # debug = false
  # quiet = false
  # logformat = "text"
  # logfile = ""
  # logfile_rotation_interval = "0h"
  # logfile_rotation_max_size = "0MB"
  # logfile_rotation_max_archives = 5
  # log_with_timezone = ""

  ## Host tag added to every metric; empty means the OS host name.
  hostname = ""
  ## Leave out the host tag altogether.
  omit_hostname = false

  ## File where plugins keep state across restarts (e.g. the telemetry
  ## output's pseudonym key when no key file is mounted).
  # statefile = ""
`
