// Every test process: a connection to anything but this machine fails at once, naming the host, so no
// test can reach the internet (Stripe's real hosts included) even by mistake, e.g. a reporter left on its
// default base URL.
const net = require('node:net');

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|0:0:0:0:0:0:0:1)$/;
const connect = net.Socket.prototype.connect;

net.Socket.prototype.connect = function guardedConnect(...args) {
  // net.connect() hands over its normalized arguments as one array: [options, callback].
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const options = typeof first === 'object' && first !== null ? first : null;
  const host = options !== null ? (options.host ?? (options.path !== undefined ? 'unix' : 'localhost')) : typeof args[1] === 'string' ? args[1] : typeof first === 'string' && Number.isNaN(Number(first)) ? 'unix' : 'localhost';
  if (host !== 'unix' && !LOOPBACK.test(String(host).replace(/^\[|\]$/g, ''))) {
    const error = Object.assign(new Error(`test tried to connect to ${host}: tests talk to 127.0.0.1 only (jest.no-network.js)`), { code: 'ECONNREFUSED' });
    process.nextTick(() => this.destroy(error));
    return this;
  }
  return connect.apply(this, args);
};
