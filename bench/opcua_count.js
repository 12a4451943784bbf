// Counts OPC UA data-change notifications with node-opcua, an implementation independent
// of asyncua (bench/opcua_notifications.py runs it with the Node 22 of bench/peers).
// argv[2]: JSON {url, node_ids, repeat, seconds, interval_ms}; prints {"count": N}.
"use strict";
const opcua = require(require.resolve("node-opcua-client", { paths: [process.cwd()] }));

async function main() {
  const request = JSON.parse(process.argv[2]);
  const client = opcua.OPCUAClient.create({ endpointMustExist: false, keepSessionAlive: true });
  await client.connect(request.url);
  const session = await client.createSession();
  const subscription = await session.createSubscription2({
    requestedPublishingInterval: request.interval_ms,
    requestedLifetimeCount: 10000,
    requestedMaxKeepAliveCount: 100,
    maxNotificationsPerPublish: 0,
    publishingEnabled: true,
    priority: 0,
  });
  const items = [];
  for (let r = 0; r < request.repeat; r += 1) {
    for (const nodeId of request.node_ids) {
      items.push({ nodeId, attributeId: opcua.AttributeIds.Value });
    }
  }
  let counting = false;
  let count = 0;
  const group = await subscription.monitorItems(
    items,
    { samplingInterval: request.interval_ms, queueSize: 1, discardOldest: true },
    opcua.TimestampsToReturn.Both,
  );
  group.on("changed", () => { if (counting) count += 1; });
  await new Promise((resolve) => setTimeout(resolve, 2000));
  counting = true;
  await new Promise((resolve) => setTimeout(resolve, request.seconds * 1000));
  counting = false;
  await subscription.terminate();
  await session.close();
  await client.disconnect();
  console.log(JSON.stringify({ count }));
}

main().catch((error) => { console.error(error); process.exit(1); });
