// Package registry is the source of truth for who exists: things, thing
// types, users, groups and the relationships between them (user owns,
// operates or views a thing; a gateway thing fronts child things).
//
// It exists to keep the rules in one place: names are validated like AWS IoT
// thing names, attributes are bounded and checked against the thing type's
// schema, passwords are stored only as argon2id hashes, updates are
// optimistic (a caller may name the version it read) and every change is
// committed together with its event in the audit log.
//
// Relationships may expire; access requests (access.go) let users ask for
// one and owners grant it for a while, and the registry can be exported
// and imported whole as JSON or CSV (transfer.go).
package registry
