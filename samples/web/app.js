// The page: sign in, get a token, keep it fresh with the official credential, sign out everywhere.
// The credential comes from @azure/communication-common, bundled for the browser by build.mjs.
import { AzureCommunicationTokenCredential } from "./vendor/communication-common.js";
import { devAuth } from "./auth.js";
import { ApiError, TokenApi } from "./token-api.js";

const DEFAULT_API = "http://127.0.0.1:7071/api";
const $ = (id) => document.getElementById(id);

/** The signed-in session: API client, credential, what the service last answered, refresh history. */
let session = null;
let countdown = null;

// Configuration from the query string (?api=…&user=…), so a link can point the page at any deployment.
const query = new URLSearchParams(location.search);
$("api-base").value = query.get("api") || DEFAULT_API;
$("user-name").value = query.get("user") || "";

// Swap this for your own sign-in (see auth.js): the rest of the page only calls getAuthHeaders().
const getAuthHeaders = devAuth(() => $("user-name").value);

function tokenRequest() {
  const scopes = [...document.querySelectorAll("input[name=scope]:checked")].map((box) => box.value);
  const minutes = Number($("expiry").value);
  return { scopes, ...(minutes ? { expiresInMinutes: minutes } : {}) };
}

function showStatus(text) {
  $("status").textContent = text;
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = error instanceof ApiError
    ? `${error.message} (${error.status ? `HTTP ${error.status}, ` : ""}${error.code})`
    : String(error.message || error);
}

/** The official credential; its tokenRefresher goes through our API, and it refreshes proactively. */
function makeCredential(owner, grant) {
  return new AzureCommunicationTokenCredential({
    token: grant.token,
    refreshProactively: true,
    tokenRefresher: async (abortSignal) => {
      try {
        const fresh = await owner.api.refresh(owner.request, abortSignal);
        owner.grant = fresh;
        noteRefresh(owner, "automatic (the credential's tokenRefresher)");
        return fresh.token;
      } catch (error) {
        if (owner === session) showError(error);
        throw error;
      }
    },
  });
}

function noteRefresh(owner, how) {
  owner.refreshes += 1;
  owner.lastRefresh = `${how} at ${new Date().toLocaleTimeString()}`;
  setTimeout(render, 0); // a macrotask: runs after the credential has stored the new token
}

async function render() {
  if (!session) return;
  const current = await session.credential.getToken(); // what chat/calling clients would get now
  const grant = session.grant;
  $("user-id").textContent = grant.communicationUserId;
  $("scopes").textContent = grant.scopes.join(", ");
  $("expires-on").textContent = `${new Date(current.expiresOnTimestamp).toLocaleString()} (${grant.expiresOn})`;
  $("refresh-count").textContent = String(session.refreshes);
  $("last-refresh").textContent = session.lastRefresh;
  $("token").textContent = current.token;
  session.expiresOnTimestamp = current.expiresOnTimestamp;
  renderCountdown();
  $("session").hidden = false;
}

function renderCountdown() {
  if (!session) return;
  const seconds = Math.round((session.expiresOnTimestamp - Date.now()) / 1000);
  $("expires-in").textContent = seconds > 0
    ? `${Math.floor(seconds / 60)} min ${seconds % 60} s`
    : "expired (the credential gets a new one on next use)";
}

function endSession() {
  session?.credential.dispose(); // stops its proactive refresh timer
  session = null;
  clearInterval(countdown);
  $("session").hidden = true;
}

async function busy(button, work) {
  button.disabled = true;
  showError(null);
  try {
    await work();
  } catch (error) {
    showError(error);
    showStatus(session ? "Still signed in; that action failed (see below)." : "Not signed in.");
  } finally {
    button.disabled = false;
  }
}

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("sign-in"), async () => {
    endSession();
    const api = new TokenApi($("api-base").value, getAuthHeaders);
    const request = tokenRequest();
    showStatus("Signing in…");
    const grant = await api.issue(request);
    session = { api, request, grant, refreshes: 0, lastRefresh: "none yet", expiresOnTimestamp: 0, credential: null };
    session.credential = makeCredential(session, grant);
    countdown = setInterval(renderCountdown, 1000);
    await render();
    showStatus(`Signed in as ${$("user-name").value.trim()}.`);
  });
});

$("refresh-now").addEventListener("click", () => busy($("refresh-now"), async () => {
  if (!session) return;
  showStatus("Refreshing…");
  // The credential has no public "refresh now": get a new token through the same API call its
  // tokenRefresher makes, then replace the credential (which reschedules its proactive refresh).
  const fresh = await session.api.refresh(session.request);
  session.credential.dispose();
  session.grant = fresh;
  session.credential = makeCredential(session, fresh);
  noteRefresh(session, "manual (Refresh now)");
  await render();
  showStatus("Got a new token.");
}));

$("sign-out").addEventListener("click", () => busy($("sign-out"), async () => {
  if (!session) return;
  showStatus("Signing out everywhere…");
  const outcome = await session.api.revoke();
  endSession();
  showStatus(outcome === "pending"
    ? "Sign-out recorded: ACS is busy, so the service will revoke every token of this user within minutes."
    : "Signed out everywhere: every token issued to this user so far is revoked, on every device.");
}));
