package policy

import (
	"strings"
	"unicode/utf8"
)

// MaxTopicLength is the MQTT limit on a topic name or filter, in bytes.
const MaxTopicLength = 65535

// TopicLimits tightens the MQTT rules for topic names and filters. The zero value
// applies only the protocol's own limits. AWS IoT Core's limits, for comparison, are
// TopicLimits{MaxBytes: 256, MaxLevels: 8} (at most 7 slashes). For a shared
// subscription the limits apply to FILTER; the $share/NAME/ prefix does not count
// towards MaxLevels.
type TopicLimits struct {
	MaxBytes  int // 0 means MaxTopicLength
	MaxLevels int // 0 means no limit; levels are the "/"-separated parts
}

// ValidateTopicName checks a topic name (PUBLISH, Will, retained message) against the
// MQTT rules: non-empty, at most 65,535 bytes, well-formed UTF-8 without NUL, and no
// wildcard characters. Problems are reported as *TopicError.
func ValidateTopicName(name string) error { return TopicLimits{}.ValidateName(name) }

// ValidateTopicFilter checks a topic filter (SUBSCRIBE, UNSUBSCRIBE): the topic name
// rules, except that "+" may be a whole level and "#" may be the whole last level.
// A shared subscription "$share/NAME/FILTER" is accepted when NAME is non-empty and
// free of wildcards and FILTER is valid. Problems are reported as *TopicError.
func ValidateTopicFilter(filter string) error { return TopicLimits{}.ValidateFilter(filter) }

// ValidateName is ValidateTopicName with the limits in l.
func (l TopicLimits) ValidateName(name string) error {
	if r := l.check(name, false); r != 0 {
		return &TopicError{Topic: truncate(name, 100), Reason: r}
	}
	return nil
}

// ValidateFilter is ValidateTopicFilter with the limits in l.
func (l TopicLimits) ValidateFilter(filter string) error {
	f := filter
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		name, sub, ok := strings.Cut(rest, "/")
		if !ok || name == "" || strings.ContainsAny(name, "+#") || sub == "" {
			return &TopicError{Topic: truncate(filter, 100), Filter: true, Reason: TopicBadSharedSubscription}
		}
		if len(filter) > l.maxBytes() {
			return &TopicError{Topic: truncate(filter, 100), Filter: true, Reason: TopicTooLong}
		}
		f = sub
	}
	if r := l.check(f, true); r != 0 {
		return &TopicError{Topic: truncate(filter, 100), Filter: true, Reason: r}
	}
	return nil
}

func (l TopicLimits) maxBytes() int {
	if l.MaxBytes <= 0 || l.MaxBytes > MaxTopicLength {
		return MaxTopicLength
	}
	return l.MaxBytes
}

// check returns the first problem with s, or 0. It does not allocate.
func (l TopicLimits) check(s string, filter bool) TopicErrorReason {
	switch {
	case s == "":
		return TopicEmpty
	case len(s) > l.maxBytes():
		return TopicTooLong
	case !utf8.ValidString(s):
		return TopicInvalidUTF8
	}
	levels := 1
	start := 0 // start of the current level
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0:
			return TopicNUL
		case '/':
			levels++
			start = i + 1
		case '+':
			if !filter {
				return TopicWildcard
			}
			if i != start || (i+1 < len(s) && s[i+1] != '/') {
				return TopicMisplacedWildcard
			}
		case '#':
			if !filter {
				return TopicWildcard
			}
			if i != start || i != len(s)-1 {
				return TopicMisplacedWildcard
			}
		}
	}
	if l.MaxLevels > 0 && levels > l.MaxLevels {
		return TopicTooManyLevels
	}
	return 0
}

// HasWildcard reports whether a topic filter contains the MQTT wildcards + or #.
func HasWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

// SplitShared splits a shared subscription "$share/NAME/FILTER" into NAME and FILTER.
// ok is false when filter is not of that form.
func SplitShared(filter string) (name, sub string, ok bool) {
	rest, found := strings.CutPrefix(filter, "$share/")
	if !found {
		return "", "", false
	}
	name, sub, ok = strings.Cut(rest, "/")
	if !ok || name == "" || sub == "" {
		return "", "", false
	}
	return name, sub, true
}

// MatchFilter reports whether topic name topic matches topic filter filter under the
// MQTT rules: "+" matches exactly one level (which may be empty), "#" matches the
// parent level and any number of levels below it, and a filter beginning with a
// wildcard does not match a topic beginning with "$" (such as $SYS/... or $aws/...).
// Both must be valid (see ValidateTopicName and ValidateTopicFilter); a shared
// subscription's FILTER part must be passed without its "$share/NAME/" prefix.
// MatchFilter does not allocate.
func MatchFilter(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return !fmore
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			return frest == "#" // "a/#" matches "a"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
