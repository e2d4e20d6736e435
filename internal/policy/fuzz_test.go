package policy

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

// refGlob is the obviously-correct IAM wildcard matcher the compiled one is checked
// against: dynamic programming over characters, "*" any run, "?" one character.
func refGlob(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	// m[j] reports whether p[:i] matches t[:j], for the current i.
	m := make([]bool, len(t)+1)
	m[0] = true
	for i := range p {
		next := make([]bool, len(t)+1)
		switch p[i] {
		case '*':
			any := false
			for j := range next {
				any = any || m[j]
				next[j] = any
			}
		case '?':
			for j := 1; j <= len(t); j++ {
				next[j] = m[j-1]
			}
		default:
			for j := 1; j <= len(t); j++ {
				next[j] = m[j-1] && t[j-1] == p[i]
			}
		}
		m = next
	}
	return m[len(t)]
}

// clip makes s valid UTF-8 of at most n bytes, so that fuzzers explore instead of
// returning early on unusable input.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"*", ""}, {"*", "a/b"}, {"", ""}, {"", "a"}, {"a", "a"}, {"a*", "abc"}, {"*c", "abc"},
		{"a*c", "ac"}, {"a*b*c", "abbbc"}, {"a*b*c", "acb"}, {"?", "é"}, {"??", "é"},
		{"a?c", "a/c"}, {"*?*", ""}, {"*a?*", "xxa"}, {"*a?*", "xxab"}, {"things/*/admin/*", "things/x/admin/y"},
		{"things/*/admin/*", "things/admin/"}, {"**a**", "a"}, {"?*?", "ab"}, {"a?b?c", "aXbYc"},
		{"*ab?d*", "abab_d"}, {"x*?y", "xy"}, {"x*?y", "xzy"}, {"topic*", "topicfilter/a"},
		{"*?é?*", "aébéc"}, {"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaa"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		pattern, s = clip(pattern, 64), clip(s, 256)
		g := compileGlob(lexLiteralWild(pattern))
		if got, want := g.match(s), refGlob(pattern, s); got != want {
			t.Fatalf("glob(%q).match(%q) = %v, want %v", pattern, s, got, want)
		}
		// The per-type residuals must match exactly the suffixes the full pattern would.
		for _, prefix := range []string{"topic/", "topicfilter/", "client/"} {
			got := false
			for _, r := range residuals(lexLiteralWild(pattern), prefix) {
				rg := compileGlob(r)
				got = got || rg.match(s)
			}
			if want := refGlob(pattern, prefix+s); got != want {
				t.Fatalf("residuals(%q, %q) match %q = %v, want %v", pattern, prefix, s, got, want)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(benchPolicy), "things/sensor-42/telemetry", "sensor-42")
	f.Add([]byte(doc(`{"Effect":"Allow","Action":"*","Resource":"*"}`)), "a", "+")
	f.Add([]byte(doc(`{"Effect":"Allow","NotAction":"iot:Publish","NotResource":["topic/${iot:ClientId}/*"]}`,
		`{"Effect":"Deny","Action":"iot:Sub*","Resource":"topicfilter/${iot:ClientId}/#","Condition":{"StringNotLike":{"iot:ClientId":"${gatehouse:Token.Scope}"},"ForAnyValue:StringEquals":{"gatehouse:Token.Scope":"a"}}}`)), "c/#", "c")
	f.Add([]byte(doc(`{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Certificate.Subject.CommonName}","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"Null":{"iot:ClientId":"false"}}}`)), "x", "x")
	f.Add([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:*","Resource":"topic/${iot:Connection.Thing.Attributes[a]}?*"}}`), "x", "")
	f.Add([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow"`), "", "")
	f.Fuzz(func(t *testing.T, data []byte, resource, clientID string) {
		d, err := Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "policy: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		s, err := Compile(NamedDocument{Name: "fuzz", Document: d})
		if err != nil {
			t.Fatalf("Compile of a parsed document: %v", err)
		}
		ctxs := []Context{
			{},
			{ClientID: clientID, SourceIP: netip.MustParseAddr("10.1.2.3"),
				Thing:       &Thing{Name: clientID, TypeName: "t", Attributes: map[string]string{"a": resource}},
				Certificate: &Certificate{Subject: Name{CommonName: []string{clientID}}},
				Token:       &Token{Subject: clientID, Scope: []string{"a", resource, clientID}}},
		}
		for _, ctx := range ctxs {
			b := s.Bind(ctx)
			for a := Action(0); a <= numActions; a++ {
				got := b.Allowed(a, resource)
				d := b.Explain(a, resource)
				if got != d.Allowed {
					t.Fatalf("Allowed(%v, %q) = %v but Explain says %v (%s)", a, resource, got, d.Allowed, d)
				}
				for _, m := range d.Matched {
					if m.Effect == Deny && got {
						t.Fatalf("Allowed(%v, %q) = true although Deny statement %v matched", a, resource, m)
					}
				}
			}
		}
	})
}

// refValid is a split-based reference for topic name and filter validation.
func refValid(s string, filter bool) bool {
	if s == "" || len(s) > MaxTopicLength || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return false
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if !strings.ContainsAny(l, "+#") {
			continue
		}
		if !filter {
			return false
		}
		if l == "+" || (l == "#" && i == len(levels)-1) {
			continue
		}
		return false
	}
	return true
}

// refMatchFilter is a split-based reference for MQTT topic matching.
func refMatchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) || (l != "+" && l != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

func FuzzTopic(f *testing.F) {
	seeds := [][2]string{
		{"#", "a"}, {"+", "a"}, {"+", "/"}, {"+/+", "/"}, {"a/#", "a"}, {"a/+", "a/"}, {"#", "$SYS/x"},
		{"+/x", "$aws/x"}, {"$aws/#", "$aws/x"}, {"a/b", "a/b"}, {"a/+/c", "a/b/c"}, {"a/#/c", "a/b/c"},
		{"a+", "a+"}, {"a/b#", "a/b#"}, {"", ""}, {"a\x00", "a"}, {"$share/g/a/+", "a/b"}, {"$share//a", "a"},
		{"$share/g+/a", "a"}, {"sport/tennis/player1/#", "sport/tennis/player1"}, {"/+", "/finance"},
		{"+/+/+", "a//"}, {"a\xff", "a\xff"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		nameErr := ValidateTopicName(topic)
		if got, want := nameErr == nil, refValid(topic, false); got != want {
			t.Fatalf("ValidateTopicName(%q) = %v, want valid=%v", topic, nameErr, want)
		}
		filterErr := ValidateTopicFilter(filter)
		if !strings.HasPrefix(filter, "$share/") {
			if got, want := filterErr == nil, refValid(filter, true); got != want {
				t.Fatalf("ValidateTopicFilter(%q) = %v, want valid=%v", filter, filterErr, want)
			}
		}
		if nameErr == nil {
			if err := ValidateTopicFilter(topic); err != nil && !strings.HasPrefix(topic, "$share/") {
				t.Fatalf("topic name %q is not a valid filter: %v", topic, err)
			}
			if !MatchFilter(topic, topic) {
				t.Fatalf("MatchFilter(%q, %q) = false, want true (a name matches itself)", topic, topic)
			}
			if got, want := MatchFilter("#", topic), topic[0] != '$'; got != want {
				t.Fatalf("MatchFilter(\"#\", %q) = %v, want %v", topic, got, want)
			}
		}
		if nameErr == nil && filterErr == nil && !strings.HasPrefix(filter, "$share/") {
			if got, want := MatchFilter(filter, topic), refMatchFilter(filter, topic); got != want {
				t.Fatalf("MatchFilter(%q, %q) = %v, want %v", filter, topic, got, want)
			}
		}
		if _, sub, ok := SplitShared(filter); ok && filterErr == nil {
			if err := ValidateTopicFilter(sub); err != nil {
				t.Fatalf("shared %q is valid but its filter %q is not: %v", filter, sub, err)
			}
		}
	})
}

// refTokens matches s against tokens without variables, character by character.
func refTokens(toks []token, s string) bool {
	type item struct {
		kind tokKind
		r    rune
	}
	var p []item
	for _, t := range toks {
		if t.kind == tokLit {
			for _, r := range t.lit {
				p = append(p, item{tokLit, r})
			}
			continue
		}
		p = append(p, item{kind: t.kind})
	}
	text := []rune(s)
	m := make([]bool, len(text)+1)
	m[0] = true
	for i := range p {
		next := make([]bool, len(text)+1)
		switch p[i].kind {
		case tokStar:
			any := false
			for j := range next {
				any = any || m[j]
				next[j] = any
			}
		case tokQuest:
			for j := 1; j <= len(text); j++ {
				next[j] = m[j-1]
			}
		default:
			for j := 1; j <= len(text); j++ {
				next[j] = m[j-1] && text[j-1] == p[i].r
			}
		}
		m = next
	}
	return m[len(text)]
}

// FuzzEval compares the engine with a naive evaluator that builds the full
// "TYPE/resource" string per request and substitutes ${iot:ClientId} by hand.
func FuzzEval(f *testing.F) {
	f.Add("things/${iot:ClientId}/*", "dev1", "things/dev1/x", uint8(0), false)
	f.Add("things/${iot:ClientId}/*", "*", "things/other/x", uint8(0), false)
	f.Add("my/${iot:ClientId}/topic", "+", "my/+/topic", uint8(1), false)
	f.Add("my/${iot:ClientId}/topic", "+", "my/x/topic", uint8(1), true)
	f.Add("a?${iot:ClientId}*", "", "ab/c", uint8(0), true)
	f.Add("${iot:ClientId}", "c?", "cx", uint8(2), false)
	f.Add("x${*}${?}${$}", "c", "x*?$", uint8(0), false)
	f.Fuzz(func(t *testing.T, pattern, clientID, resource string, kind uint8, deny bool) {
		pattern, clientID, resource = clip(pattern, 64), clip(clientID, 32), clip(resource, 128)
		types := []struct {
			a      Action
			prefix string
		}{{ActionPublish, "topic/"}, {ActionSubscribe, "topicfilter/"}, {ActionConnect, "client/"}}
		typ := types[int(kind)%len(types)]
		raw := typ.prefix + pattern
		// Build the statement by hand so that any string is representable.
		q := func(s string) string {
			var b strings.Builder
			b.WriteByte('"')
			for _, r := range s {
				switch {
				case r == '"' || r == '\\':
					b.WriteByte('\\')
					b.WriteRune(r)
				case r < 0x20:
					b.WriteString(`\u00`)
					b.WriteByte("0123456789abcdef"[r>>4])
					b.WriteByte("0123456789abcdef"[r&15])
				default:
					b.WriteRune(r)
				}
			}
			b.WriteByte('"')
			return b.String()
		}
		var src string
		if deny {
			src = doc(`{"Effect":"Allow","Action":"*","Resource":"*"}`, `{"Effect":"Deny","Action":"*","Resource":`+q(raw)+`}`)
		} else {
			src = doc(`{"Effect":"Allow","Action":"*","Resource":` + q(raw) + `}`)
		}
		d, err := Parse([]byte(src))
		if err != nil {
			return // not every pattern is a valid resource (e.g. unknown variables)
		}
		s, err := Compile(NamedDocument{Name: "f", Document: d})
		if err != nil {
			t.Fatal(err)
		}
		got := s.Bind(Context{ClientID: clientID}).Allowed(typ.a, resource)

		toks, err := lexPattern(raw, true)
		if err != nil {
			t.Fatalf("Parse accepted %q but lexPattern fails: %v", raw, err)
		}
		usable := clientID != "" && !(typ.a == ActionSubscribe && strings.ContainsAny(clientID, "+#"))
		var sub []token
		unresolved := false
		for _, tk := range toks {
			switch {
			case tk.kind != tokVar:
				sub = append(sub, tk)
			case tk.key.id == keyClientID && usable:
				sub = append(sub, token{kind: tokLit, lit: clientID})
			default:
				unresolved = true
				sub = append(sub, token{kind: tokStar}) // only used for Deny
			}
		}
		var want bool
		matches := refTokens(sub, typ.prefix+resource)
		if deny {
			want = !matches
		} else {
			want = !unresolved && matches
		}
		if resource == "" {
			want = false
		}
		if got != want {
			t.Fatalf("Allowed(%v, %q) with %s %q, client id %q = %v, want %v", typ.a, resource, map[bool]string{true: "Deny", false: "Allow"}[deny], raw, clientID, got, want)
		}
	})
}
