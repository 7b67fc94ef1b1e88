package sinks

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// WebhookPath is where the controller serves its validating webhook for
// both kinds.
const WebhookPath = "/validate-pksapi-io-v1beta1-sinks"

// validator refuses at admission what the controller would mark Invalid,
// with the same message: the tenancy rules, Telegraf's loader, the
// plugins' Init.
type validator struct {
	decoder admission.Decoder
	checker Checker
}

func newValidator(scheme *runtime.Scheme, checker Checker) *admission.Webhook {
	return &admission.Webhook{Handler: &validator{decoder: admission.NewDecoder(scheme), checker: checker}}
}

func (v *validator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation == admissionv1.Delete {
		return admission.Allowed("")
	}
	var err error
	switch req.Kind.Kind {
	case "MetricSink":
		var sink MetricSink
		if err := v.decoder.DecodeRaw(req.Object, &sink); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if sink.Namespace == "" {
			sink.Namespace = req.Namespace
		}
		_, err = v.checker.ValidateMetricSink(&sink)
	case "ClusterMetricSink":
		var sink ClusterMetricSink
		if err := v.decoder.DecodeRaw(req.Object, &sink); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		_, err = v.checker.ValidateClusterMetricSink(&sink)
	default:
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unexpected kind %q", req.Kind.Kind))
	}
	if err != nil {
		return admission.Denied(err.Error())
	}
	return admission.Allowed("")
}
