package broker

import (
	"encoding/json"
	"strings"

	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// people notes whom a relationship or user event concerns: the person of a
// user->thing relationship (their ${gatehouse:User.Things.*} change), the
// gateway of a thing->thing relationship (its ${gatehouse:Thing.Children}),
// and a user who was updated or deleted (disabled people are refused by
// the recheck). Their sessions are re-authorized, so a person whose
// ownership is removed stops receiving with the next message.
func (c *changes) people(ev store.Event) {
	mark := func(m *map[string]bool, name string) {
		if name == "" {
			return
		}
		if *m == nil {
			*m = map[string]bool{}
		}
		(*m)[name] = true
	}
	if name, ok := strings.CutPrefix(ev.Subject, "user/"); ok && strings.HasPrefix(ev.Type, "user.") {
		mark(&c.users, name)
		return
	}
	var r store.Relationship
	if json.Unmarshal(ev.Details, &r) != nil || r.Subject == "" {
		// A relationship event without readable details: re-check everyone
		// rather than miss a removal.
		c.all = true
		return
	}
	switch r.SubjectKind {
	case store.KindUser:
		mark(&c.users, r.Subject)
	case store.KindThing:
		mark(&c.things, r.Subject)
	}
}
