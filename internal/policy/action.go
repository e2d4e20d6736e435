package policy

import (
	"fmt"
	"strings"
)

// Action is an AWS IoT data-plane action that a policy statement can allow or deny.
// The zero value is not a valid action: [Bound.Allowed] answers false for it.
type Action uint8

// The actions Gatehouse evaluates. The MQTT ones are what the broker checks; the shadow and
// jobs ones are accepted in documents so that AWS IoT policies parse unchanged, and are
// answered like any other action (their resource is a thing name).
const (
	ActionConnect                      Action = iota + 1 // iot:Connect, resource client/<client id>
	ActionPublish                                        // iot:Publish, resource topic/<topic>
	ActionSubscribe                                      // iot:Subscribe, resource topicfilter/<filter>
	ActionReceive                                        // iot:Receive, resource topic/<topic>, checked on every delivery
	ActionRetainPublish                                  // iot:RetainPublish, resource topic/<topic> (Publish is needed too)
	ActionGetRetainedMessage                             // iot:GetRetainedMessage, resource topic/<topic>
	ActionListRetainedMessages                           // iot:ListRetainedMessages, resource "*"
	ActionGetThingShadow                                 // iot:GetThingShadow, resource thing/<name>
	ActionUpdateThingShadow                              // iot:UpdateThingShadow, resource thing/<name>
	ActionDeleteThingShadow                              // iot:DeleteThingShadow, resource thing/<name>
	ActionListNamedShadowsForThing                       // iot:ListNamedShadowsForThing, resource thing/<name>
	ActionDescribeJobExecution                           // iot:DescribeJobExecution, resource thing/<name>
	ActionGetPendingJobExecutions                        // iot:GetPendingJobExecutions, resource thing/<name>
	ActionStartNextPendingJobExecution                   // iot:StartNextPendingJobExecution, resource thing/<name>
	ActionUpdateJobExecution                             // iot:UpdateJobExecution, resource thing/<name>

	numActions // one past the last action
)

// String returns the action's name as written in policies, e.g. "iot:Publish".
func (a Action) String() string {
	switch a {
	case ActionConnect:
		return "iot:Connect"
	case ActionPublish:
		return "iot:Publish"
	case ActionSubscribe:
		return "iot:Subscribe"
	case ActionReceive:
		return "iot:Receive"
	case ActionRetainPublish:
		return "iot:RetainPublish"
	case ActionGetRetainedMessage:
		return "iot:GetRetainedMessage"
	case ActionListRetainedMessages:
		return "iot:ListRetainedMessages"
	case ActionGetThingShadow:
		return "iot:GetThingShadow"
	case ActionUpdateThingShadow:
		return "iot:UpdateThingShadow"
	case ActionDeleteThingShadow:
		return "iot:DeleteThingShadow"
	case ActionListNamedShadowsForThing:
		return "iot:ListNamedShadowsForThing"
	case ActionDescribeJobExecution:
		return "iot:DescribeJobExecution"
	case ActionGetPendingJobExecutions:
		return "iot:GetPendingJobExecutions"
	case ActionStartNextPendingJobExecution:
		return "iot:StartNextPendingJobExecution"
	case ActionUpdateJobExecution:
		return "iot:UpdateJobExecution"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// ResourceType returns the kind of resource the action is checked against.
func (a Action) ResourceType() ResourceType {
	switch a {
	case ActionConnect:
		return ResourceClient
	case ActionPublish, ActionReceive, ActionRetainPublish, ActionGetRetainedMessage:
		return ResourceTopic
	case ActionSubscribe:
		return ResourceTopicFilter
	case ActionListRetainedMessages:
		return ResourceNone
	case ActionGetThingShadow, ActionUpdateThingShadow, ActionDeleteThingShadow,
		ActionListNamedShadowsForThing, ActionDescribeJobExecution, ActionGetPendingJobExecutions,
		ActionStartNextPendingJobExecution, ActionUpdateJobExecution:
		return ResourceThing
	}
	return ResourceNone
}

func (a Action) valid() bool { return a > 0 && a < numActions }

// ParseAction returns the action with the given name, e.g. "iot:Publish". Like IAM it
// ignores case. Wildcards are not accepted here; they belong in policy documents.
func ParseAction(name string) (Action, error) {
	if a := lookupAction(name); a != 0 {
		return a, nil
	}
	return 0, fmt.Errorf("policy: unknown action %q", name)
}

func lookupAction(name string) Action {
	service, local, ok := strings.Cut(name, ":")
	if !ok || !strings.EqualFold(service, "iot") {
		return 0
	}
	for a := Action(1); a < numActions; a++ {
		if strings.EqualFold(local, a.String()[len("iot:"):]) {
			return a
		}
	}
	return 0
}

// ResourceType is the kind of resource an action applies to. It decides which
// "TYPE/" prefix of a policy resource is compared with the request's resource.
type ResourceType uint8

// Resource types.
const (
	ResourceNone        ResourceType = iota // no resource: only a policy Resource of "*" matches
	ResourceClient                          // client/<client id>
	ResourceTopic                           // topic/<topic name>
	ResourceTopicFilter                     // topicfilter/<topic filter>
	ResourceThing                           // thing/<thing name>

	numResourceTypes
)

// String returns the ARN resource-type word ("client", "topic", ...) or "none".
func (t ResourceType) String() string {
	switch t {
	case ResourceClient:
		return "client"
	case ResourceTopic:
		return "topic"
	case ResourceTopicFilter:
		return "topicfilter"
	case ResourceThing:
		return "thing"
	}
	return "none"
}

// actionMask has bit a set for each Action a.
type actionMask uint32

const allActions = actionMask(1<<numActions-1) &^ 1

func (m actionMask) has(a Action) bool { return m&(1<<a) != 0 }

// typeMask returns the resource types the actions in m are checked against.
func (m actionMask) types() (t [numResourceTypes]actionMask) {
	for a := Action(1); a < numActions; a++ {
		if m.has(a) {
			t[a.ResourceType()] |= 1 << a
		}
	}
	return t
}

// String lists the actions in m, for messages.
func (m actionMask) String() string {
	var names []string
	for a := Action(1); a < numActions; a++ {
		if m.has(a) {
			names = append(names, a.String())
		}
	}
	return strings.Join(names, ", ")
}

// parseActionPattern returns the actions an Action/NotAction entry names. Names are
// case-insensitive; "*" and "iot:" followed by an IAM wildcard pattern are accepted, and
// must name at least one known action.
func parseActionPattern(s string) (actionMask, error) {
	if s == "*" {
		return allActions, nil
	}
	service, local, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("action %q has no service prefix (expected iot:NAME or *)", s)
	}
	if strings.ContainsAny(service, "*?") {
		return 0, fmt.Errorf("action %q: wildcards are not allowed in the service prefix", s)
	}
	if !strings.EqualFold(service, "iot") {
		return 0, fmt.Errorf("action %q: service %q is not iot (Gatehouse evaluates AWS IoT data-plane actions only)", s, service)
	}
	if local == "" {
		return 0, fmt.Errorf("action %q has no name after the service prefix", s)
	}
	if !strings.ContainsAny(local, "*?") {
		a := lookupAction(s)
		if a == 0 {
			return 0, fmt.Errorf("unknown action %q", s)
		}
		return 1 << a, nil
	}
	g := compileGlob(lexLiteralWild(strings.ToLower(local)))
	var m actionMask
	for a := Action(1); a < numActions; a++ {
		if g.match(strings.ToLower(a.String()[len("iot:"):])) {
			m |= 1 << a
		}
	}
	if m == 0 {
		return 0, fmt.Errorf("action %q matches no known iot action", s)
	}
	return m, nil
}
