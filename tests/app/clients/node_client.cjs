// A server-side Node caller of the token API with the official AzureCommunicationTokenCredential
// (@azure/communication-common), global fetch, and a tokenRefresher that calls POST /api/token/refresh.
//
// Proactive refresh, shown without waiting an hour: the credential decides from Date.now() (see
// autoRefreshTokenCredential.js: a token within 10 minutes of expiry is "expiring soon", and the
// timer fires after half of the remaining lifetime). We move Date.now() - the credential's clock
// only, timers stay real - to 4 seconds before the issued token's expiry, as if 59 min 56 s had
// passed, then build the credential. Its own timer must call the refresher ~2 s later.
//
// Usage: node node_client.cjs <api base, e.g. http://127.0.0.1:7071/api> <user>
// Prints one JSON line; exits non-zero with a message on any failure.
const { AzureCommunicationTokenCredential } = require("@azure/communication-common");

const [apiArg, user] = process.argv.slice(2);
const apiBase = apiArg.replace(/\/+$/, "");
const REQUEST = { scopes: ["chat", "voip"], expiresInMinutes: 60 };
const WAIT_MS = 20000;

async function post(path, body, asUser = user) {
  const response = await fetch(`${apiBase}/${path}`, {
    method: "POST",
    headers: { "X-Dev-User": asUser, "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await response.text();
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = { raw: text.slice(0, 200) };
  }
  if (!response.ok) {
    const error = new Error(`${path}: ${response.status} ${JSON.stringify(payload)}`);
    error.status = response.status;
    error.code = payload?.error?.code;
    throw error;
  }
  return payload;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const issued = await post("token", REQUEST);

  const realNow = Date.now.bind(Date);
  const issuedExpiry = Date.parse(issued.expiresOn);
  const offsetMs = issuedExpiry - 4000 - realNow();
  Date.now = () => realNow() + offsetMs;

  const refresherCalls = [];
  let firstRefresh;
  const refreshed = new Promise((resolve, reject) => { firstRefresh = { resolve, reject }; });
  const credential = new AzureCommunicationTokenCredential({
    token: issued.token,
    refreshProactively: true,
    tokenRefresher: async () => {
      try {
        const grant = await post("token/refresh", REQUEST);
        refresherCalls.push(grant);
        firstRefresh.resolve(grant);
        return grant.token;
      } catch (error) {
        firstRefresh.reject(error);
        throw error;
      }
    },
  });

  const grant = await withTimeout(refreshed, WAIT_MS, "the credential's proactive refresh");
  await new Promise((resolve) => setImmediate(resolve)); // let the credential store the new token
  const current = await credential.getToken();
  credential.dispose();
  Date.now = realNow;

  // And an error from the service reaches the caller of getToken() with its code: a credential whose
  // token has expired, for a user who never got one (refresh never creates an identity).
  let strangerError = null;
  const stranger = new AzureCommunicationTokenCredential({
    tokenRefresher: async () => (await post("token/refresh", REQUEST, `${user}-stranger`)).token,
  });
  try {
    await stranger.getToken();
  } catch (error) {
    strangerError = { status: error.status, code: error.code };
  }
  stranger.dispose();

  console.log(JSON.stringify({
    issued,
    refreshed: grant,
    refresherCalls: refresherCalls.length,
    credentialToken: current.token,
    credentialExpiresOnTimestamp: current.expiresOnTimestamp,
    strangerError,
  }));
}

main().catch((error) => {
  console.error(error?.stack || String(error));
  process.exit(1);
});
