package config

import (
	"fmt"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"
)

// Prefixes is a list of CIDR prefixes (192.0.2.0/28, 2001:db8::/64),
// parsed once where the configuration is read — from the file, the
// environment (comma-separated) or a flag — so that what the server uses
// is what was validated.
type Prefixes []netip.Prefix

// ParsePrefixes parses comma-separated CIDR prefixes; blanks are skipped.
func ParsePrefixes(s string) (Prefixes, error) {
	var ps Prefixes
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		p, err := parsePrefix(item)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix (e.g. 192.0.2.0/28 or 2001:db8::/64)", s)
	}
	return p, nil
}

// UnmarshalYAML reads a YAML list of prefixes. Bad entries are reported
// as YAML type errors, with their line, so that decoding goes on and
// every mistake in the file is reported at once.
func (ps *Prefixes) UnmarshalYAML(n *yaml.Node) error {
	var items []string
	if err := n.Decode(&items); err != nil {
		return err
	}
	var bad []string
	*ps = nil
	for i, s := range items {
		p, err := parsePrefix(s)
		if err != nil {
			line := n.Line
			if i < len(n.Content) {
				line = n.Content[i].Line
			}
			bad = append(bad, fmt.Sprintf("line %d: %v", line, err))
			continue
		}
		*ps = append(*ps, p)
	}
	if bad != nil {
		return &yaml.TypeError{Errors: bad}
	}
	return nil
}

// Strings is the list as written, for printing.
func (ps Prefixes) Strings() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
