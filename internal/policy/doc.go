// Package policy decides whether an IoT client may connect, publish, subscribe or
// receive, by evaluating AWS IoT Core policy documents.
//
// It exists so that everything in Gatehouse that authorizes device traffic — the
// embedded broker's hooks, the HTTPS publish endpoint, the external-broker adapters
// and the console's policy simulator — gives the same answer for the same policies,
// and so that policies written for AWS IoT Core keep their meaning when devices move
// to Gatehouse. It is a pure decision engine: standard library only, no I/O, no
// clock, no global state. Callers load documents from storage and describe the
// connection in a [Context].
//
// # Use
//
// Parse each document once, compile the documents that apply to a principal into a
// [Set] (cache it), bind the Set to a connection's [Context] when the client connects,
// and ask the [Bound] about every packet:
//
//	doc, err := policy.Parse(jsonBytes)                         // *policy.Error on problems
//	set, err := policy.Compile(policy.NamedDocument{Name: "device", Document: doc})
//	b := set.Bind(policy.Context{ClientID: id, Thing: &policy.Thing{Name: id}})
//	if !b.Allowed(policy.ActionPublish, topic) { /* reject */ }
//	d := b.Explain(policy.ActionPublish, topic)                 // simulator: what matched, why
//
// Bind substitutes variables and evaluates conditions once, so Allowed only matches
// precompiled patterns: it does not allocate and takes tens to hundreds of
// nanoseconds. The request resource is the bare client id, topic name, topic filter
// or thing name; the engine never builds ARN strings per request (each policy
// resource is split once into a REGION/ACCOUNT part and per-type patterns for what
// follows "client/", "topic/", "topicfilter/" or "thing/").
//
// # Documents
//
// A document is {"Version": "2012-10-17", "Statement": [...]}, with an optional "Id".
// Only version 2012-10-17 is accepted: 2008-10-17 (and a missing Version, which IAM
// reads as 2008-10-17) treats ${...} as literal text, so accepting it would silently
// change what a policy means. Statement is one object or a list of up to
// [MaxStatements]; a document is at most [MaxDocumentSize] bytes and must be UTF-8.
// A statement has Effect ("Allow" or "Deny", case-sensitive), Action or NotAction,
// Resource or NotResource (each a string or a non-empty list of strings), an optional
// Sid and an optional Condition. Field names are case-sensitive. Unknown fields,
// duplicate fields, Principal, and anything this package would otherwise have to
// ignore are errors: a policy either means exactly what it says or does not load.
// Errors are *[Error] values naming the statement (zero-based, its position in the
// Statement list) and the element, e.g.
//
//	policy: statement 2: Effect "Alow" is not Allow or Deny
//
// # Actions
//
// Action names are case-insensitive, as in IAM. Accepted: "*", "iot:*", the [Action]
// constants' names (iot:Connect, iot:Publish, iot:Subscribe, iot:Receive,
// iot:RetainPublish, iot:GetRetainedMessage, iot:ListRetainedMessages and the shadow
// and jobs data-plane actions), and iot: patterns with IAM wildcards such as
// "iot:*Retained*". An unknown name, a pattern that matches no known action, and
// another service (greengrass:*, s3:*) are errors. The engine answers one action at a
// time; AWS's compound rules — RetainPublish also needs Publish, every MQTT action
// needs the connection to have been allowed — are the caller's to apply.
//
// # Resources
//
// A resource is "*", an ARN arn:PARTITION:iot:REGION:ACCOUNT:TYPE/NAME, or the
// Gatehouse short form TYPE/NAME, where TYPE is client, topic, topicfilter or thing.
// REGION and ACCOUNT may use wildcards; by default any region and account match, and
// [Options] can pin them. IAM wildcards apply throughout: "*" matches any run of
// characters including "/" and across levels, "?" exactly one character. MQTT's "+"
// and "#" are literal in policies: topicfilter/a/+/b matches only a subscription to
// the literal filter "a/+/b". Resources are case-sensitive. iot:ListRetainedMessages
// has no resource: only a Resource of exactly "*" matches it. Variables may not appear
// in PARTITION, REGION, ACCOUNT or TYPE.
//
// # Policy variables
//
// ${name} may appear in Resource and NotResource values (after TYPE/) and in
// String* condition values. Names are case-insensitive; the name in brackets is not.
//
//	${iot:ClientId}                                  Context.ClientID
//	${aws:SourceIp}                                  Context.SourceIP
//	${iot:Connection.Thing.ThingName}                Context.Thing.Name
//	${iot:Connection.Thing.ThingTypeName}            Context.Thing.TypeName
//	${iot:Connection.Thing.Attributes[name]}         Context.Thing.Attributes
//	${iot:Connection.Thing.IsAttached}               "true" when Context.Thing is set, else "false"
//	${iot:Certificate.SerialNumber}
//	${iot:Certificate.Subject.CommonName}            and Country, Organization, OrganizationalUnit,
//	${iot:Certificate.Issuer.CommonName}             State, SerialNumber, DistinguishedNameQualifier,
//	                                                 Title, Surname, GivenName, Initials, Pseudonym,
//	                                                 GenerationQualifier
//	${iot:Certificate.Subject.AlternativeName.DNSName} and IPAddress, RFC822Name,
//	                                                 UniformResourceIdentifier, DirectoryName (also Issuer.)
//	${iot:Certificate.Subject.Organization.List}     every value of a certificate attribute (".List")
//	${gatehouse:Token.Subject}                       Context.Token.Subject ("sub")
//	${gatehouse:Token.ClientId}                      Context.Token.ClientID ("client_id")
//	${gatehouse:Token.Scope}                         Context.Token.Scope, multi-valued
//	${gatehouse:Token.Claims[name]}                  Context.Token.Claims[name]
//	${gatehouse:User.Name}                           Context.User.Name
//	${gatehouse:User.Groups}                         Context.User.Groups, multi-valued
//	${gatehouse:User.Things.<relation>}              Context.User.Things[relation], multi-valued
//	                                                 (owner, operator, viewer: the things the user has that relation with)
//	${gatehouse:Thing.Children}                      Context.Thing.Children, multi-valued (a gateway's child things)
//	${*} ${?} ${$}                                   the literal characters *, ? and $
//
// A "$" not followed by "{" is literal, as in topic/$aws/things/... . Default values
// (${key, 'default'}) are not supported and are an error, as is an unknown name.
//
// Values are substituted as literal text: a client id "*" or "a?b" matches only
// itself, never as a wildcard. An empty value, a value that is not valid UTF-8, and a
// single-valued certificate attribute that occurs more than once in the certificate
// (which of them would be meant is ambiguous) all count as unresolved.
//
// The relational variables (gatehouse:User.* and gatehouse:Thing.Children) name other
// principals. Such a name is substituted only if it is a plain topic level: a value
// containing + # * ? / $ or NUL is unusable everywhere (an Allow does not grant it, a
// Deny widens to "*"), so a thing named "+" or "*" can never widen a person's access.
// When such a variable is the only one in a pattern and stands for a whole topic level
// after a literal prefix (things/${gatehouse:User.Things.owner}/telemetry/*), its values
// are matched by one set lookup: any number of values, no MaxExpansions bound, no
// allocation per check.
//
// Multi-valued variables — gatehouse:Token.Scope, the relational lists and the ".List" certificate forms —
// expand: a value containing one stands for the list of its substitutions, so
// "topic/scoped/${gatehouse:Token.Scope}/*" grants each scope's subtree and nothing
// else, in Resource, NotResource and condition values alike. A value that would expand
// into more than [MaxExpansions] patterns is treated as unresolved. As condition keys,
// multi-valued keys must be used with ForAnyValue: or ForAllValues:, because a plain
// operator on a set is ambiguous; using one without is an error.
//
// # Unresolved variables
//
// AWS IoT says a statement with a variable it cannot resolve does not match. For Allow
// statements Gatehouse does the same, so a missing value never widens access:
//
//   - Allow, Resource value: that value matches nothing (other values still do).
//   - Allow, NotResource value: the statement grants nothing for that resource type.
//   - Allow, condition value: a positive operator's value matches nothing; a negated
//     operator (StringNotEquals, StringNotLike, ...) is false, since nothing shows the
//     key differs from an unknown value.
//
// For Deny statements Gatehouse deliberately departs from AWS, which would let a Deny
// silently lapse when, say, an HTTPS publish has no client id or a certificate is not
// attached to a thing. Information that is missing must not turn a denial off, so a
// Deny applies if it would apply for some value of the variable:
//
//   - Deny, Resource value: the variable becomes "*" (deny whatever it could be).
//   - Deny, NotResource value: that value excludes nothing.
//   - Deny, condition value: a positive operator treats it as "*"; a negated operator
//     drops it from the list.
//
// A missing condition key (as opposed to a variable in a value) follows IAM exactly:
// positive operators are false, negated operators true, ...IfExists true, ForAnyValue
// false, ForAllValues true, and Null tests for it. Note the IAM footgun that
// ForAllValues is true when the key is absent (for example gatehouse:Token.Scope on a
// certificate-only connection); pair it with a Null check in Allow statements.
//
// # Conditions
//
// Supported operators: StringEquals, StringNotEquals, StringEqualsIgnoreCase,
// StringNotEqualsIgnoreCase, StringLike, StringNotLike, Bool, IpAddress,
// NotIpAddress (IPv4 and IPv6 addresses or CIDR blocks, on aws:SourceIp or an
// IPAddress alternative name) and Null, with the ForAnyValue:/ForAllValues:
// qualifiers and the IfExists suffix. Numeric, Date, Binary and Arn operators and
// unknown operators or keys are errors, never ignored. Keys are the variable names
// above (without ${}). Operators in a block, and keys under an operator, must all
// hold; the values for one key are alternatives (for negated operators: none may
// match). Every key describes the connection, so conditions are evaluated once, by
// Bind; a Bound must be re-made when the context changes.
//
// # Evaluation
//
// As in IAM: a request is denied unless some Allow statement matches it; any matching
// Deny, in any document of the Set, overrides every Allow; statement and document
// order do not matter. [Bound.Explain] reports the matching statements (policy name,
// statement index, Sid) and the [Reason]: ExplicitDeny, ExplicitAllow or ImplicitDeny.
//
// # Pitfalls carried over from AWS IoT
//
// Subscribe is checked against the filter as written, Receive against each delivered
// topic. A Deny on topicfilter/a/restricted/* does not stop a client that subscribes
// to "a/#" from receiving a/restricted/x: deny iot:Receive on topic/a/restricted/*
// (Receive is checked on every delivery, which is also how access is revoked from
// existing subscriptions).
//
// AWS warns that ${iot:ClientId} in a topicfilter resource lets a client whose id is
// "+" or "#" subscribe to a wildcard filter ("my/${iot:ClientId}/topic" becomes
// "my/+/topic", everybody's topics). Gatehouse closes this: a variable value containing
// "+" or "#" is unresolved in topicfilter resources (so an Allow does not grant it and
// a Deny widens to "*"). Pin iot:Connect to known client ids all the same.
//
// With non-exclusive thing association AWS IoT takes the thing name from the client
// id; Gatehouse leaves that check to the caller (set Context.Thing only when the
// client id is the attached thing's name).
//
// # MQTT topics
//
// [ValidateTopicName], [ValidateTopicFilter] and [TopicLimits] check names and filters
// against the MQTT rules (errors are *[TopicError] with a [TopicErrorReason], e.g.
// TopicWildcard for a wildcard in a topic name), and [MatchFilter] implements MQTT
// subscription matching, including that filters starting with a wildcard do not match
// topics starting with "$". Neither allocates on success.
package policy
