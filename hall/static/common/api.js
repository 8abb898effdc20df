// The REST API as the pages use it: the bearer token, RFC 9457 problems as errors.
//
// A page gets its token once, from `?token=` in its URL (a kiosk or a wall screen is set
// up with its device token that way) or from a staff login, and keeps it in
// localStorage under the page's own key, so a reload or a reboot of the screen keeps
// working and a token never stays visible in the address bar.

const STORAGE = "smarthall.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || `http_${status}`;
    this.title = problem.title || "";
    this.problem = problem;
  }
}

export function takeTokenFromUrl() {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    setToken(given);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return token();
}

export function token() {
  return localStorage.getItem(STORAGE) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(STORAGE, value);
  else localStorage.removeItem(STORAGE);
}

export async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const sent = { ...headers };
  const bearer = token();
  if (bearer) sent.Authorization = `Bearer ${bearer}`;
  if (body !== undefined && !(body instanceof Blob)) sent["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers: sent,
    body: body === undefined ? undefined : body instanceof Blob ? body : JSON.stringify(body),
  });
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      problem = { title: await response.text().catch(() => "") };
    }
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export async function login(staffId, password) {
  const session = await api("/auth/login", {
    method: "POST", body: { staff_id: staffId, password },
  });
  setToken(session.token);
  return session;
}
