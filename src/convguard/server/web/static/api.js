// The REST API as the pages use it: same-origin requests authenticated by the httpOnly session
// cookie, each carrying the CSRF header the server requires of cookie-authenticated requests.
// The API key typed at sign-in is sent once to /web/session and never stored by the page.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
  }
}

const HEADERS = { "X-Convguard-CSRF": "1" };

export async function request(method, path, body) {
  const init = { method, headers: { ...HEADERS }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  whoami: () => request("GET", "/web/session"),
  signIn: (key) => request("POST", "/web/session", { key }),
  signOut: () => request("DELETE", "/web/session"),
  resources: (locale) =>
    request("GET", "/web/resources" + (locale ? `?locale=${encodeURIComponent(locale)}` : "")),
  conversations: () => request("GET", "/v1/conversations?limit=200"),
  create: (title) => request("POST", "/v1/conversations", title ? { title } : {}),
  tree: (id) => request("GET", `/v1/conversations/${encodeURIComponent(id)}`),
  retry: (id, messageId) =>
    request(
      "POST",
      `/v1/conversations/${encodeURIComponent(id)}/messages/${encodeURIComponent(messageId)}/retry`,
    ),
  feedback: (id, body) =>
    request("POST", `/v1/conversations/${encodeURIComponent(id)}/feedback`, body),
  review: () => request("GET", "/v1/review?limit=200"),
  reports: (query) => request("GET", `/v1/review/reports?${query}`),
  stats: (query) => request("GET", `/v1/review/stats?${query}`),
  exported: (id) => request("GET", `/v1/review/conversations/${encodeURIComponent(id)}`),
};

// POST a user turn and read the reply as it streams (server-sent events over the response body).
// handlers: { turn(data), delta(text), done(data), error(ApiError) }.
export async function streamTurn(id, body, handlers) {
  const response = await fetch(`/v1/conversations/${encodeURIComponent(id)}/messages?stream=true`, {
    method: "POST",
    credentials: "same-origin",
    headers: { ...HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const text = await response.text();
    throw new ApiError(response.status, text ? JSON.parse(text) : null);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      const parsed = data ? JSON.parse(data) : null;
      if (kind === "turn") handlers.turn(parsed);
      else if (kind === "delta") handlers.delta(parsed.text);
      else if (kind === "done") handlers.done(parsed);
      else if (kind === "error") handlers.error(new ApiError(502, parsed));
    }
  }
}

// Small DOM helper: el("p", {class: "x", text: "hi"}, child, ...). Never sets innerHTML.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function when(iso) {
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// The sign-in form, shown in `root` until a key is exchanged for a session; resolves with
// {account, admin}.
export function signInForm(root, { title, intro }) {
  return new Promise((resolve) => {
    const error = el("p", { class: "form-error", role: "alert", id: "signin-error" });
    const input = el("input", {
      id: "api-key",
      name: "key",
      type: "password",
      autocomplete: "off",
      spellcheck: "false",
      required: true,
      "aria-describedby": "signin-help signin-error",
    });
    const form = el(
      "form",
      { class: "signin card", "aria-labelledby": "signin-title" },
      el("h1", { id: "signin-title", text: title }),
      el("p", { text: intro }),
      el("label", { for: "api-key", text: "API key" }),
      input,
      el(
        "p",
        { id: "signin-help", class: "hint" },
        "Create one with ",
        el("code", { text: "convguard keys create --account NAME" }),
        ". It is exchanged for a session cookie and is not kept in this page.",
      ),
      error,
      el("button", { type: "submit", class: "primary", text: "Sign in" }),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const who = await api.signIn(input.value.trim());
        input.value = "";
        resolve(who);
      } catch (failure) {
        error.textContent = failure.message;
        input.focus();
      }
    });
    root.replaceChildren(form);
    input.focus();
  });
}
