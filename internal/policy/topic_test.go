package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	tests := []struct {
		s          string
		nameReason TopicErrorReason // 0: valid
		filtReason TopicErrorReason
	}{
		{"a", 0, 0},
		{"a/b/c", 0, 0},
		{"/", 0, 0},
		{"a//b", 0, 0},
		{"$SYS/x", 0, 0},
		{"é/ü", 0, 0},
		{"", TopicEmpty, TopicEmpty},
		{"a\x00b", TopicNUL, TopicNUL},
		{"a\xffb", TopicInvalidUTF8, TopicInvalidUTF8},
		{"a/+/b", TopicWildcard, 0},
		{"+", TopicWildcard, 0},
		{"#", TopicWildcard, 0},
		{"a/#", TopicWildcard, 0},
		{"+/+/#", TopicWildcard, 0},
		{"a+", TopicWildcard, TopicMisplacedWildcard},
		{"a/+b", TopicWildcard, TopicMisplacedWildcard},
		{"a/#/b", TopicWildcard, TopicMisplacedWildcard},
		{"a#", TopicWildcard, TopicMisplacedWildcard},
		{"##", TopicWildcard, TopicMisplacedWildcard},
		{"$share/g/a/+", TopicWildcard, 0},
		{"$share/g/", 0, TopicBadSharedSubscription},
		{"$share//a", 0, TopicBadSharedSubscription},
		{"$share/g+/a", TopicWildcard, TopicBadSharedSubscription},
		{"$share/g/a#", TopicWildcard, TopicMisplacedWildcard},
		{strings.Repeat("a", MaxTopicLength), 0, 0},
		{strings.Repeat("a", MaxTopicLength+1), TopicTooLong, TopicTooLong},
	}
	for _, tt := range tests {
		check := func(what string, err error, want TopicErrorReason, filter bool) {
			t.Helper()
			var te *TopicError
			switch {
			case want == 0 && err != nil:
				t.Errorf("%s(%.40q) = %v, want nil", what, tt.s, err)
			case want != 0 && !errors.As(err, &te):
				t.Errorf("%s(%.40q) = %v, want a *TopicError with reason %v", what, tt.s, err, want)
			case want != 0 && (te.Reason != want || te.Filter != filter):
				t.Errorf("%s(%.40q) reason = %v (filter %v), want %v (filter %v)", what, tt.s, te.Reason, te.Filter, want, filter)
			}
		}
		check("ValidateTopicName", ValidateTopicName(tt.s), tt.nameReason, false)
		check("ValidateTopicFilter", ValidateTopicFilter(tt.s), tt.filtReason, true)
	}
}

func TestTopicLimits(t *testing.T) {
	aws := TopicLimits{MaxBytes: 256, MaxLevels: 8}
	tests := []struct {
		s    string
		want TopicErrorReason
	}{
		{"a/b/c/d/e/f/g/h", 0},
		{"a/b/c/d/e/f/g/h/i", TopicTooManyLevels},
		{strings.Repeat("a", 256), 0},
		{strings.Repeat("a", 257), TopicTooLong},
	}
	for _, tt := range tests {
		var got TopicErrorReason
		var te *TopicError
		if err := aws.ValidateName(tt.s); errors.As(err, &te) {
			got = te.Reason
		}
		if got != tt.want {
			t.Errorf("ValidateName(%.20q) reason = %v, want %v", tt.s, got, tt.want)
		}
	}
	if err := aws.ValidateFilter("$share/group/a/b/c/d/e/f/g/+"); err != nil {
		t.Errorf("ValidateFilter(shared, 8 levels) = %v, want nil (the $share prefix does not count)", err)
	}
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true},
		{"#", "a/b", true},
		{"#", "/", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+/tennis/#", "sport/tennis", true},
		{"#", "$SYS/uptime", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"a/b", "a/b", true},
		{"a/b", "a/B", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"", "a", false},
		{"a", "", false},
		{"a/#/b", "a/x/b", false}, // invalid filter: # not last
	}
	for _, tt := range tests {
		if got := MatchFilter(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestSplitShared(t *testing.T) {
	tests := []struct {
		in, name, sub string
		ok            bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/g/#", "g", "#", true},
		{"$share//a", "", "", false},
		{"$share/g", "", "", false},
		{"$share/g/", "", "", false},
		{"a/b", "", "", false},
	}
	for _, tt := range tests {
		name, sub, ok := SplitShared(tt.in)
		if name != tt.name || sub != tt.sub || ok != tt.ok {
			t.Errorf("SplitShared(%q) = %q, %q, %v, want %q, %q, %v", tt.in, name, sub, ok, tt.name, tt.sub, tt.ok)
		}
	}
	if !HasWildcard("a/+") || HasWildcard("a/b") {
		t.Error("HasWildcard gives wrong answers")
	}
}
