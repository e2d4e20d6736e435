// Fleet provisioning with the AWS IoT Device SDK for JavaScript v2, driven by
// e2e/fleetprov_test.go: exactly as AWS's sample
// (samples/node/service_clients/fleet_provisioning/basic) does it, against
// Gatehouse's MQTTS listener. A device holding only a claim certificate
// connects, calls CreateKeysAndCertificate and RegisterThing through the
// SDK's iotidentity client, then connects again under its new identity and
// publishes. A second RegisterThing with the same ownership token must be
// refused. Writes the new certificate, key and answers to OUT_DIR.
import { iot, mqtt5, iotidentity } from 'aws-iot-device-sdk-v2';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
};
const host = env('MQTT_HOST'), port = Number(env('MQTT_PORT')), ca = env('CA_FILE');
const template = env('TEMPLATE'), params = JSON.parse(env('TEMPLATE_PARAMETERS')), out = env('OUT_DIR');

async function connect(cert, key, clientId) {
    const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(host, cert, key);
    builder.withPort(port);
    builder.withCertificateAuthorityFromPath(undefined, ca);
    builder.withConnectProperties({ clientId, keepAliveIntervalSeconds: 60 });
    const client = new mqtt5.Mqtt5Client(builder.build());
    const connected = once(client, 'connectionSuccess');
    const failed = once(client, 'connectionFailure').then(([e]) => { throw new Error(`connect ${clientId}: ${e.error}`); });
    client.start();
    await Promise.race([connected, failed]);
    return client;
}

async function stop(client) {
    const stopped = once(client, 'stopped');
    client.stop();
    await stopped;
    client.close();
}

const claim = await connect(env('CLAIM_CERT'), env('CLAIM_KEY'), `fleet-provisioning-${process.pid}`);
console.log('connected with the claim certificate');
const identity = iotidentity.IotIdentityClientv2.newFromMqtt5(claim, {
    maxRequestResponseSubscriptions: 2, maxStreamingSubscriptions: 0, operationTimeoutInSeconds: 30,
});

const created = await identity.createKeysAndCertificate({});
console.log(`CreateKeysAndCertificate: certificate ${created.certificateId}`);
const certFile = join(out, 'device.pem.crt'), keyFile = join(out, 'device.private.key');
writeFileSync(certFile, created.certificatePem, { mode: 0o600 });
writeFileSync(keyFile, created.privateKey, { mode: 0o600 });

const registered = await identity.registerThing({
    templateName: template, certificateOwnershipToken: created.certificateOwnershipToken, parameters: params,
});
console.log(`RegisterThing: ${JSON.stringify(registered)}`);

// The same token again: refused, with AWS's error shape.
let refusal;
try {
    await identity.registerThing({ templateName: template, certificateOwnershipToken: created.certificateOwnershipToken, parameters: params });
} catch (e) {
    refusal = e.modeledError ?? { description: String(e) };
}
console.log(`RegisterThing with a used token: ${JSON.stringify(refusal)}`);
identity.close();
await stop(claim);

writeFileSync(join(out, 'answers.json'), JSON.stringify({
    certificateId: created.certificateId, registered, refusal,
}));

// The new identity: connect as the thing and publish.
const device = await connect(certFile, keyFile, registered.thingName);
const res = await device.publish({ topicName: `telemetry/${registered.thingName}`, qos: mqtt5.QoS.AtLeastOnce, payload: '{"temperature":21.5}' });
const code = res?.reasonCode ?? -1;
console.log(`publish as ${registered.thingName}: PUBACK reason ${code}`);
await stop(device);
writeFileSync(join(out, 'published.json'), JSON.stringify({ pubackReason: code }));
process.exit(0);
