package oauth

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// tokenMetrics are the authorization server's Prometheus series. A nil
// *tokenMetrics (RegisterMetrics not called) records nothing.
type tokenMetrics struct {
	issued *prometheus.CounterVec // grant
	errors *prometheus.CounterVec // code
	// clientCredentials is issued's client_credentials child, looked up once.
	clientCredentials prometheus.Counter
}

// RegisterMetrics exports the server's counters to reg:
//
//	gatehouse_oauth_tokens_issued_total{grant}  access tokens issued, by grant type
//	gatehouse_oauth_token_errors_total{code}    error answers of the token endpoints, by RFC 6749 error code
//
// The token endpoints are /oauth2/token and the ForgeRock-style thing
// endpoint. Call it before serving.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	m := &tokenMetrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_oauth_tokens_issued_total",
			Help: "Access tokens issued, by grant type."}, []string{"grant"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_oauth_token_errors_total",
			Help: "Error answers of the token endpoints, by RFC 6749 error code."}, []string{"code"}),
	}
	m.clientCredentials = m.issued.WithLabelValues(string(oidc.GrantTypeClientCredentials))
	for _, c := range []prometheus.Collector{m.issued, m.errors} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	s.metrics.Store(m)
	return nil
}

func (m *tokenMetrics) tokenIssued(grant string) {
	switch {
	case m == nil:
	case grant == string(oidc.GrantTypeClientCredentials):
		m.clientCredentials.Inc()
	default:
		m.issued.WithLabelValues(metricLabel(grant)).Inc()
	}
}

func (m *tokenMetrics) tokenError(code string) {
	if m != nil {
		m.errors.WithLabelValues(metricLabel(code)).Inc()
	}
}

// metricLabel keeps label values to a bounded set of names: grant types
// and error codes are chosen by the server, but "other" stands in for
// anything that does not look like one.
func metricLabel(v string) string {
	if v == "" || len(v) > 64 {
		return "other"
	}
	for _, c := range v {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != ':' && c != '-' && c != '.' {
			return "other"
		}
	}
	return v
}
