// Package archtest holds tests of the code base's shape rather than its
// behaviour: every package has a doc comment saying why it exists, and
// imports point one way (docs/architecture.md: the policy engine does no I/O, only
// cmd imports the app wiring, domain packages never import HTTP edges).
package archtest
