package broker

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/gatehouse-iot/gatehouse/internal/policy"
)

// This file keeps what Gatehouse sends on the wire within each client's
// protocol version where mochi does not: MQTT 3.1.1 has CONNACK return
// codes 0–5 only and no server DISCONNECT, and an MQTT 5 PUBLISH may name
// its topic by an alias that must be resolved before it is authorized.

// topicAliasMaximum is the Topic Alias Maximum announced to MQTT 5 clients
// (mochi's own default, 65535, is not announced, and would let a client
// park 65535 topic names on one connection).
const topicAliasMaximum = 8

// v3ConnackCode is the MQTT 3.1.1 CONNACK return code for an MQTT 5
// refusal, false if 3.1.1 has none (the connection is then closed without
// a CONNACK, as 3.1.1 does for protocol violations [MQTT-3.1.4-1]).
func v3ConnackCode(code byte) (byte, bool) {
	switch code {
	case packets.ErrUnsupportedProtocolVersion.Code:
		return packets.Err3UnsupportedProtocolVersion.Code, true
	case packets.ErrClientIdentifierNotValid.Code,
		// mochi refuses a 3.1.1 client with an empty client id and
		// CleanSession 0 with 0x80; 3.1.1 says 0x02 [MQTT-3.1.3-8].
		packets.ErrUnspecifiedError.Code:
		return packets.Err3ClientIdentifierNotValid.Code, true
	case packets.ErrServerUnavailable.Code, packets.ErrServerBusy.Code, packets.ErrServerShuttingDown.Code,
		packets.ErrConnectionRateExceeded.Code, packets.ErrUseAnotherServer.Code, packets.ErrServerMoved.Code:
		return packets.Err3ServerUnavailable.Code, true
	case packets.ErrBadUsernameOrPassword.Code, packets.ErrMalformedUsername.Code, packets.ErrMalformedPassword.Code,
		packets.ErrBadAuthenticationMethod.Code:
		return packets.ErrMalformedUsernameOrPassword.Code, true // 0x04 bad user name or password
	case packets.ErrNotAuthorized.Code, packets.ErrBanned.Code, packets.ErrQuotaExceeded.Code:
		return packets.Err3NotAuthorized.Code, true
	}
	return 0, false
}

// connackCode is the refusal to send cl: code itself for MQTT 5, its 3.1.1
// return code for older clients. mochi maps a few codes itself, but 0x86
// (bad credentials) to 0x05 and 0x87 (not authorized) to nothing.
func connackCode(cl *mqtt.Client, code packets.Code) packets.Code {
	if cl.Properties.ProtocolVersion >= 5 {
		return code
	}
	if v3, ok := v3ConnackCode(code.Code); ok {
		return packets.Code{Code: v3, Reason: code.Reason}
	}
	return packets.ErrServerUnavailable
}

// unsendable is what OnPacketEncode turns a packet into that must not reach
// the client: mochi cannot encode a packet of type 0, so WritePacket writes
// nothing and fails, and the caller, which is closing the connection
// anyway (DisconnectClient, a refused CONNACK), goes on closing it.
var unsendable = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Reserved}}

// OnPacketEncode adjusts what mochi is about to send cl: for MQTT 3.1.1
// (and 3.1) no DISCONNECT, which those versions do not have (the
// connection is just closed), and CONNACK codes within 0–5; for MQTT 5 the
// Topic Alias Maximum in a successful CONNACK, which mochi does not
// announce although it accepts aliases.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	v5 := cl.Properties.ProtocolVersion >= 5
	switch {
	case pk.FixedHeader.Type == packets.Disconnect && !v5:
		return unsendable
	case pk.FixedHeader.Type == packets.Connack && !v5 && pk.ReasonCode >= packets.ErrUnspecifiedError.Code:
		code, ok := v3ConnackCode(pk.ReasonCode)
		if !ok {
			return unsendable
		}
		pk.ReasonCode = code
	case pk.FixedHeader.Type == packets.Connack && v5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code:
		pk.Properties.TopicAliasMaximum = h.b.server.Options.Capabilities.TopicAliasMaximum
	}
	return pk
}

// OnPacketRead runs before mochi validates and handles a packet: an MQTT 5
// PUBLISH gets its topic alias resolved, so that it is authorized for the
// topic it names (mochi authorizes first and resolves later, so every
// alias-only PUBLISH was refused); an MQTT 3 QoS 0 PUBLISH the policy
// refuses ends the connection unless Config.DropDeniedQoS0 (mochi drops it).
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	if cl.Properties.ProtocolVersion >= 5 {
		return h.resolveTopicAlias(cl, pk)
	}
	if pk.FixedHeader.Qos == 0 && !h.b.cfg.DropDeniedQoS0 {
		if s := h.session(cl); s != nil && (h.expired(s) || !h.mayPublish(s, pk.TopicName, pk.FixedHeader.Retain)) {
			return pk, endConnection(packets.ErrNotAuthorized)
		}
	}
	return pk, nil
}

// endConnection is the error OnPacketRead returns to end the connection
// for code: mochi ignores any error from that hook but ErrRejectPacket,
// with which its read loop ends, the will is published (as for any
// connection that fails) and OnDisconnect is told the code.
func endConnection(code packets.Code) error {
	return fmt.Errorf("%w: %w", packets.ErrRejectPacket, code)
}

// resolveTopicAlias fills in the topic of a PUBLISH that names it by alias
// and records the alias of one that sets it. Aliases out of range are left
// to mochi, which disconnects with 0x94; an alias never set is 0x94 too.
func (h *hook) resolveTopicAlias(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	alias := pk.Properties.TopicAlias
	if !pk.Properties.TopicAliasFlag || alias == 0 || alias > h.b.server.Options.Capabilities.TopicAliasMaximum {
		return pk, nil
	}
	pk.TopicName = cl.State.TopicAliases.Inbound.Set(alias, pk.TopicName)
	if pk.TopicName == "" {
		_ = h.b.server.DisconnectClient(cl, packets.ErrTopicAliasInvalid)
		return pk, endConnection(packets.ErrTopicAliasInvalid)
	}
	return pk, nil
}

// mayPublish is the whole authorization of a PUBLISH to topic: the
// reserved topics, iot:Publish and, if retained, iot:RetainPublish.
// Refusals are recorded.
func (h *hook) mayPublish(s *session, topic string, retain bool) bool {
	if !h.publishAllowed(s, topic) {
		return false
	}
	if retain && !s.bound.Load().Allowed(policy.ActionRetainPublish, topic) {
		h.denied(s, "iot:RetainPublish", topic)
		return false
	}
	return true
}

// refusePublish answers a PUBLISH that OnPublish refuses with code. MQTT 5
// gets the code in a PUBACK for QoS 1 and in a PUBREC for QoS 2 (§4.3.3;
// mochi answers both with PUBACK); MQTT 3 has no negative acknowledgement,
// so a QoS 1/2 client is disconnected (closed); QoS 0 is dropped.
func (h *hook) refusePublish(cl *mqtt.Client, pk packets.Packet, code packets.Code, why string) (packets.Packet, error) {
	switch {
	case pk.FixedHeader.Qos == 0:
	case cl.Properties.ProtocolVersion >= 5:
		_ = cl.WritePacket(negativeAck(pk, code))
	default:
		if s := h.session(cl); s != nil {
			go h.kick(s, code, why)
		}
	}
	return pk, packets.ErrRejectPacket
}

// negativeAck is the MQTT 5 acknowledgement refusing a QoS 1 or 2 PUBLISH.
func negativeAck(pk packets.Packet, code packets.Code) packets.Packet {
	typ := byte(packets.Puback)
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: typ},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	}
}
