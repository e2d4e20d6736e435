// Package awsiot serves a subset of the AWS IoT registry API (things and
// thing types: ListThings, DescribeThing, CreateThing, UpdateThing,
// DeleteThing, ListThingTypes, DescribeThingType, CreateThingType) over
// Gatehouse's registry, with the REST-JSON shapes and error types the AWS
// SDKs expect, authenticated with AWS Signature V4.
//
// It exists so that tools written against the AWS SDK can manage a
// Gatehouse registry unchanged, and so that registry synchronization with
// AWS IoT (internal/awssync) can be exercised against a real server that
// speaks the same protocol. Access keys are Gatehouse records whose secret,
// which SigV4 verification needs in the clear, is sealed with the master
// key. Requests are authenticated by the Authorization header (presigned
// URLs are not accepted).
package awsiot
