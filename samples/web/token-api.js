// The trusted token service's API (POST /api/token, /token/refresh, /token/revoke) over fetch.
// Errors come back as {"error": {"code", "message"}}: they surface as ApiError with both, so the
// page can show the service's own sentence. 429 and 503 are retried after Retry-After (bounded).

const MAX_ATTEMPTS = 3;
const MAX_RETRY_AFTER_SECONDS = 30;

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export class TokenApi {
  /**
   * @param {string} baseUrl e.g. http://127.0.0.1:7071/api
   * @param {() => Promise<Record<string, string>>} getAuthHeaders who the caller is (see auth.js)
   */
  constructor(baseUrl, getAuthHeaders) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.getAuthHeaders = getAuthHeaders;
  }

  /** Get-or-create the caller's ACS identity and a token: {communicationUserId, token, expiresOn, scopes}. */
  issue(body, abortSignal) {
    return this.#post("token", body, abortSignal);
  }

  /** A new token for the caller's existing identity (404 identity_not_found before the first issue). */
  refresh(body, abortSignal) {
    return this.#post("token/refresh", body, abortSignal);
  }

  /**
   * Revoke every token of the caller's identity: sign out everywhere.
   * Resolves to "done" (204) or "pending" (202: ACS was busy; the service recorded it and its sweep finishes it).
   */
  async revoke(abortSignal) {
    const answer = await this.#post("token/revoke", undefined, abortSignal);
    return answer?.status === "pending" ? "pending" : "done";
  }

  async #post(path, body, abortSignal) {
    const url = `${this.baseUrl}/${path}`;
    for (let attempt = 1; ; attempt++) {
      const headers = { ...(await this.getAuthHeaders()) };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response;
      try {
        response = await fetch(url, {
          method: "POST",
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: abortSignal,
          cache: "no-store",
        });
      } catch (error) {
        if (error?.name === "AbortError") throw error;
        // fetch hides the reason; a missing CORS allowance looks exactly like a service that is down.
        throw new ApiError(0, "network_error",
          `Could not reach ${url}: is the API running, and does its CORS setting allow ${location.origin}?`);
      }
      if ((response.status === 429 || response.status === 503) && attempt < MAX_ATTEMPTS) {
        const seconds = Math.min(Number(response.headers.get("Retry-After")) || 1, MAX_RETRY_AFTER_SECONDS);
        await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
        continue;
      }
      if (response.status === 204) return null;
      const payload = await response.json().catch(() => null);
      if (!response.ok) {
        const error = payload?.error ?? {};
        throw new ApiError(response.status, error.code ?? "http_error",
          error.message ?? `The API answered ${response.status} ${response.statusText}.`);
      }
      return payload;
    }
  }
}
