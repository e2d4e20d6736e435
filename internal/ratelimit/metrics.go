package ratelimit

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Rejections is the Prometheus counter gatehouse_limit_rejections_total
// by limit name. A nil *Rejections counts nothing.
type Rejections struct {
	vec *prometheus.CounterVec
}

// NewRejections registers the counter with reg and makes the named limits
// visible at zero.
func NewRejections(reg prometheus.Registerer, names ...string) (*Rejections, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_limit_rejections_total",
		Help: "Requests, connections and packets refused by an abuse limit, by limit name (the configuration key).",
	}, []string{"limit"})
	if err := reg.Register(vec); err != nil {
		return nil, err
	}
	r := &Rejections{vec: vec}
	for _, n := range names {
		r.declare(n)
	}
	return r, nil
}

// Inc counts one rejection by the limit named name.
func (r *Rejections) Inc(name string) {
	if r != nil {
		r.vec.WithLabelValues(name).Inc()
	}
}

func (r *Rejections) declare(name string) {
	if r != nil {
		r.vec.WithLabelValues(name)
	}
}
