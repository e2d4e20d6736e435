package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustProxies returns a handler that, for requests whose peer address is
// inside one of trusted, replaces r.RemoteAddr with the client address the
// X-Forwarded-For header names: the right-most address not itself in
// trusted (each proxy appends the peer it saw, so the addresses left of it
// are whatever the client claimed). Requests from other peers keep their
// address and their X-Forwarded-For is ignored. With no trusted prefixes
// it returns next unchanged.
func TrustProxies(trusted []netip.Prefix, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip, ok := ForwardedFor(trusted, r.RemoteAddr, r.Header.Values("X-Forwarded-For")); ok {
			r2 := *r
			r2.RemoteAddr = net.JoinHostPort(ip.String(), "0")
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// ForwardedFor is the client address behind trusted proxies: ok is false
// when the peer at remoteAddr is not trusted or the headers name no
// usable address.
func ForwardedFor(trusted []netip.Prefix, remoteAddr string, headers []string) (netip.Addr, bool) {
	peer := AddrOf(remoteAddr)
	if !peer.IsValid() || !inAny(trusted, peer) {
		return netip.Addr{}, false
	}
	var hops []string
	for _, h := range headers {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := netip.Addr{}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a garbled hop: trust nothing left of it
		}
		client = a.Unmap()
		if !inAny(trusted, client) {
			break
		}
	}
	return client, client.IsValid()
}

// AddrOf is the IP address of a "host:port" (or bare host) string, or the
// zero Addr.
func AddrOf(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func inAny(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// AddrKey is the limiter key of a client address ("host:port" or bare
// host): the IPv4 address, or the /64 prefix of an IPv6 address (one
// subscriber usually holds a whole /64, so per-address limits on single
// IPv6 addresses would be no limit).
func AddrKey(hostport string) string {
	a := AddrOf(hostport)
	switch {
	case !a.IsValid():
		return hostport
	case a.Is6():
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
