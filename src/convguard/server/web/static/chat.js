// The chat: the account's conversations, the messages of the current branch, replies streamed as
// they arrive, edits and retries that start new branches (with a ‹ 2/3 › switch between
// siblings), and the safety moments: a decline, a warning, support with crisis resources, a
// confirmation before a user's end, and the banner of an ended conversation.

import { ApiError, api, el, signInForm, streamTurn, when } from "/static/api.js";

const state = {
  who: null,
  conversations: [],
  current: null, // conversation id; null: a new chat not yet sent
  tree: null, // GET /v1/conversations/{id}
  leaf: null, // the current branch's leaf message id
  busy: false,
  resources: new Map(), // locale → crisis resources
};

const app = document.getElementById("app");
const ui = {};

const KIND_LABELS = {
  redirect: "I can't help with that one",
  warn: "Warning",
  support: "You're not alone",
  confirm_end: "Before you end this chat",
  end: "Conversation ended",
};

// --- start ------------------------------------------------------------------------------------

async function start() {
  try {
    state.who = await api.whoami();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
  }
  if (!state.who || !state.who.account) {
    state.who = await signInForm(app, {
      title: "Sign in to chat",
      intro: "Conversations here are checked against the usage policy, turn by turn.",
    });
  }
  showAccount();
  layout();
  await refreshList();
  const first = state.conversations[0];
  if (first) await open(first.id);
  else newChat();
  document.body.dataset.ready = "true";
}

function showAccount() {
  document.getElementById("who").textContent = `Signed in as ${state.who.account}`;
  document.getElementById("review-link").hidden = !state.who.admin;
  document.getElementById("account").hidden = false;
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api.signOut();
    window.location.reload();
  });
}

function layout() {
  ui.list = el("ul", { class: "conversation-list", id: "conversation-list" });
  ui.toggle = el("button", {
    type: "button",
    class: "toggle-chats",
    "aria-expanded": "false",
    "aria-controls": "conversation-list",
    text: "Your chats",
    onclick: () => {
      const open = ui.toggle.getAttribute("aria-expanded") !== "true";
      ui.toggle.setAttribute("aria-expanded", String(open));
      ui.sidebar.classList.toggle("open", open);
    },
  });
  ui.sidebar = el(
    "nav",
    { class: "sidebar", "aria-label": "Conversations" },
    el("button", { type: "button", class: "primary new-chat", text: "New chat", onclick: newChat }),
    ui.toggle,
    el("h2", { class: "list-title", text: "Your chats" }),
    ui.list,
  );
  ui.title = el("h1", { id: "chat-title", class: "chat-title", tabindex: "-1" });
  ui.transcript = el("ol", { class: "transcript", id: "transcript", "aria-label": "Messages" });
  ui.bottom = el("div", { class: "bottom" });
  ui.status = el("p", { class: "status", role: "status", id: "status" });
  ui.chat = el(
    "section",
    { class: "chat", "aria-labelledby": "chat-title" },
    ui.title,
    ui.transcript,
    ui.status,
    ui.bottom,
  );
  app.replaceChildren(ui.sidebar, ui.chat);
}

// --- the conversation list --------------------------------------------------------------------

async function refreshList() {
  state.conversations = (await api.conversations()).data;
  renderList();
}

function titleOf(conversation) {
  return conversation.title || `Chat from ${when(conversation.created_at)}`;
}

function renderList() {
  ui.list.replaceChildren(
    ...state.conversations.map((c) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "conversation",
            "aria-current": c.id === state.current ? "true" : null,
            onclick: () => open(c.id),
          },
          el("span", { class: "conversation-title", text: titleOf(c) }),
          el("span", { class: "conversation-when", text: when(c.updated_at) }),
        ),
      ),
    ),
  );
  if (!state.conversations.length) {
    ui.list.replaceChildren(el("li", { class: "hint", text: "No chats yet." }));
  }
}

// Each navigation takes a ticket; a slower, earlier one that finishes later is dropped, so a
// click on "New chat" while a conversation is still loading is never undone by it.
let ticket = 0;

function newChat() {
  ticket += 1;
  state.current = null;
  state.tree = null;
  state.leaf = null;
  renderList();
  render();
  ui.input?.focus();
}

async function open(id, leaf = null) {
  const mine = ++ticket;
  const tree = await api.tree(id);
  if (mine !== ticket) return;
  state.current = id;
  state.tree = tree;
  state.leaf = leaf && hasMessage(leaf) ? leafThrough(leaf) : newestLeaf();
  ui.sidebar.classList.remove("open");
  ui.toggle.setAttribute("aria-expanded", "false");
  renderList();
  render();
}

// --- the tree ---------------------------------------------------------------------------------

function hasMessage(id) {
  return state.tree.messages.some((m) => m.id === id);
}

function order(id) {
  return state.tree.messages.findIndex((m) => m.id === id);
}

function newestLeaf() {
  const branches = state.tree?.branches || [];
  if (!branches.length) return null;
  return branches.reduce((a, b) => (order(b.leaf_id) > order(a.leaf_id) ? b : a)).leaf_id;
}

// The newest leaf of the branches that pass through `id`.
function leafThrough(id) {
  const through = state.tree.branches.filter((b) => b.message_ids.includes(id));
  if (!through.length) return newestLeaf();
  return through.reduce((a, b) => (order(b.leaf_id) > order(a.leaf_id) ? b : a)).leaf_id;
}

function branch() {
  return state.tree?.branches.find((b) => b.leaf_id === state.leaf) || null;
}

function pathMessages() {
  const current = branch();
  if (!current) return [];
  const byId = new Map(state.tree.messages.map((m) => [m.id, m]));
  return current.message_ids.map((id) => byId.get(id));
}

function siblings(message) {
  return state.tree.messages.filter(
    (m) => m.parent_id === message.parent_id && m.role === message.role,
  );
}

function messageById(id) {
  return state.tree.messages.find((m) => m.id === id);
}

// --- rendering --------------------------------------------------------------------------------

function render() {
  const conversation = state.conversations.find((c) => c.id === state.current);
  ui.title.textContent = conversation ? titleOf(conversation) : "New chat";
  const path = pathMessages();
  ui.transcript.replaceChildren(...path.map((m, i) => renderMessage(m, path, i)));
  if (!path.length) {
    ui.transcript.replaceChildren(
      el(
        "li",
        { class: "empty" },
        el("p", { text: "Ask anything. Each message is checked against the usage policy." }),
      ),
    );
  }
  renderBottom(path);
  scrollToEnd();
}

function scrollToEnd() {
  ui.transcript.lastElementChild?.scrollIntoView({ block: "end" });
}

function decisionOf(message) {
  if (message.role === "user") return message.decision;
  const parent = message.parent_id ? messageById(message.parent_id) : null;
  return parent ? parent.decision : null;
}

function renderMessage(message, path, index) {
  const decision = decisionOf(message);
  const action = decision ? decision.action : "allow";
  const isLast = index === path.length - 1;
  const item = el("li", {
    class: `turn ${message.role} kind-${message.role === "assistant" ? action : "user"}`,
    "data-id": message.id,
  });
  const bubble = el("div", { class: "bubble" });
  const who = message.role === "user" ? "You" : "Assistant";
  bubble.append(el("span", { class: "sr-only", text: `${who}: ` }));
  if (message.role === "assistant" && KIND_LABELS[action]) {
    bubble.append(el("p", { class: "kind-label", text: KIND_LABELS[action] }));
  }
  bubble.append(el("p", { class: "text", text: message.content }));
  if (message.role === "assistant") {
    if (action === "warn") {
      bubble.append(
        el("p", {
          class: "consequence",
          text:
            "What happens next: if this continues, the conversation will be ended and nothing " +
            "more can be sent in it. You could still start a new chat, or edit an earlier " +
            "message to take it a different way.",
        }),
      );
    }
    if (action === "support") bubble.append(supportCard());
    if (action === "confirm_end" && isLast && branch()?.state.awaiting_end_confirmation) {
      bubble.append(confirmCard());
    }
  }
  item.append(bubble);
  item.append(toolbar(message, decision, isLast));
  return item;
}

function toolbar(message, decision, isLast) {
  const bar = el("div", { class: "turn-tools" });
  const versions = siblings(message);
  if (versions.length > 1) {
    const at = versions.findIndex((m) => m.id === message.id);
    const go = (offset) => {
      const target = versions[at + offset].id;
      state.leaf = leafThrough(target);
      render();
      // keep the focus on the switch: the same direction if it can go on, else the other
      const buttons = [...ui.transcript.querySelectorAll(`[data-id="${target}"] .versions button`)];
      const same = buttons[offset < 0 ? 0 : 1];
      (same && !same.disabled ? same : buttons.find((b) => !b.disabled))?.focus();
    };
    bar.append(
      el(
        "div",
        { class: "versions", role: "group", "aria-label": "Versions of this message" },
        el("button", {
          type: "button",
          class: "icon",
          "aria-label": "Previous version",
          disabled: at === 0,
          text: "‹",
          onclick: () => go(-1),
        }),
        el("span", { text: `${at + 1}/${versions.length}`, "aria-live": "polite" }),
        el("button", {
          type: "button",
          class: "icon",
          "aria-label": "Next version",
          disabled: at === versions.length - 1,
          text: "›",
          onclick: () => go(1),
        }),
      ),
    );
  }
  if (message.role === "user") {
    bar.append(
      el("button", {
        type: "button",
        class: "link",
        text: "Edit",
        "aria-label": "Edit this message (starts a new branch)",
        onclick: (event) => editMessage(message, event.currentTarget.closest("li")),
      }),
    );
    if (isLast && !message.ended) {
      bar.append(
        el("span", { class: "hint", text: "No reply yet." }),
        el("button", {
          type: "button",
          class: "link",
          text: "Get a reply",
          onclick: () => retry(message.id),
        }),
      );
    }
  } else {
    if (!message.ended) {
      // the reply that ended a branch is the end itself: its ways forward are in the banner
      bar.append(
        el("button", {
          type: "button",
          class: "link",
          text: "Retry",
          "aria-label": "Retry this reply (starts a new branch)",
          onclick: () => retry(message.id),
        }),
      );
    }
    const report = reportForm(message);
    const details = decisionDetails(decision, message);
    bar.append(
      disclosure("Report", "Report this reply as wrong", report),
      disclosure("Why?", "Why? Show the decision on this turn", details),
      report,
      details,
    );
  }
  return bar;
}

let ids = 0;
function disclosure(label, description, panel) {
  panel.id ||= `panel-${++ids}`;
  panel.hidden = true;
  const button = el("button", {
    type: "button",
    class: "link",
    text: label,
    "aria-label": description,
    "aria-expanded": "false",
    "aria-controls": panel.id,
  });
  button.addEventListener("click", () => {
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) panel.querySelector("textarea, button, a")?.focus();
  });
  return button;
}

function decisionDetails(decision, message) {
  const rows = [];
  if (decision) {
    rows.push(["Action", decision.action], ["Reason", decision.reason]);
    rows.push(["Categories", decision.categories.join(", ") || "none"]);
    rows.push(["Flags", decision.flags.join(", ") || "none"]);
    if (decision.strike) rows.push(["Counted as", "a failed redirection"]);
  } else {
    rows.push(["Action", "no decision stored for this turn"]);
  }
  rows.push(["Message id", message.id]);
  return el(
    "dl",
    { class: "decision" },
    rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]),
  );
}

function reportForm(message) {
  const id = `report-${message.id}`;
  const note = el("p", { class: "form-note", role: "status" });
  const text = el("textarea", { id, rows: "2", name: "comment", maxlength: "5000" });
  const form = el(
    "form",
    { class: "report" },
    el("label", { for: id, text: "What was wrong with this reply? (optional)" }),
    text,
    el("button", { type: "submit", class: "secondary", text: "Send report" }),
    note,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.feedback(state.current, {
        message_id: message.id,
        rating: "disagree",
        comment: text.value.trim() || "This reply was wrong.",
      });
      form.replaceChildren(
        el("p", { class: "form-note ok", role: "status", text: "Thanks — your report was received." }),
      );
    } catch (error) {
      note.textContent = error.message;
    }
  });
  return form;
}

function supportCard() {
  const locale = state.tree?.conversation.locale || "";
  const list = el("ul", { class: "resources" });
  const card = el(
    "aside",
    { class: "support-card", "aria-label": "Crisis support" },
    el("h2", { text: "Talk to someone now" }),
    list,
    el("p", {
      class: "hint",
      text: "If you are in immediate danger, call your local emergency number.",
    }),
  );
  const fill = (resources) =>
    list.replaceChildren(
      ...resources.map((r) =>
        el(
          "li",
          {},
          el("strong", { text: r.name }),
          el("span", { text: r.contact }),
          r.url ? el("a", { href: r.url, rel: "noopener noreferrer", target: "_blank", text: "Website" }) : null,
        ),
      ),
    );
  if (state.resources.has(locale)) fill(state.resources.get(locale));
  else {
    api.resources(locale).then((data) => {
      state.resources.set(locale, data.resources);
      fill(data.resources);
    });
  }
  return card;
}

function confirmCard() {
  return el(
    "div",
    { class: "confirm-card" },
    el("p", { class: "confirm-title", text: "What ending means:" }),
    el(
      "ul",
      {},
      el("li", { text: "Ending is permanent: nothing more can be sent in this conversation." }),
      el("li", { text: "Your other chats are not affected." }),
      el("li", { text: "You can start a new chat at any time." }),
      el("li", { text: "You can still edit an earlier message here to branch off." }),
    ),
    el(
      "div",
      { class: "actions" },
      el("button", {
        type: "button",
        class: "danger",
        text: "Yes, end this chat",
        onclick: () => send("Yes, please end this chat."),
      }),
      el("button", {
        type: "button",
        class: "secondary",
        text: "No, keep chatting",
        onclick: () => ui.input?.focus(),
      }),
    ),
  );
}

function renderBottom(path) {
  const current = branch();
  if (current && current.state.ended) {
    ui.bottom.replaceChildren(endedBanner(current, path));
    ui.input = null;
    ui.composer = null;
    return;
  }
  if (ui.composer && ui.bottom.contains(ui.composer)) return; // keep a draft and the focus
  ui.input = el("textarea", {
    id: "composer-input",
    name: "content",
    rows: "2",
    placeholder: "Write a message…",
    required: true,
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  ui.send = el("button", { type: "submit", class: "primary", text: "Send", disabled: state.busy });
  ui.composer = el(
    "form",
    { class: "composer" },
    el("label", { for: "composer-input", class: "sr-only", text: "Message" }),
    ui.input,
    ui.send,
  );
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const content = ui.input.value.trim();
    if (content && !state.busy) send(content);
  });
  ui.bottom.replaceChildren(
    ui.composer,
    el("p", { class: "hint composer-hint", text: "Enter sends · Shift+Enter for a new line" }),
  );
}

const ENDED_BECAUSE = {
  user: "You asked to end it, so nothing more can be sent here.",
  policy:
    "It was ended because requests that can't be helped with, or abuse, continued after a " +
    "warning. Nothing more can be sent on this branch.",
  model:
    "The assistant ended it after a warning, as the usage policy allows. Nothing more can be " +
    "sent on this branch.",
};

function endedBanner(current, path) {
  const feedback = feedbackForm(current.leaf_id);
  feedback.hidden = true;
  const banner = el(
    "section",
    { class: "ended-banner", "aria-labelledby": "ended-title", tabindex: "-1", id: "ended" },
    el("h2", { id: "ended-title", text: "This conversation has ended" }),
    el("p", { text: ENDED_BECAUSE[current.state.end_initiator] || ENDED_BECAUSE.policy }),
    el("p", { text: "You can still:" }),
    el(
      "div",
      { class: "actions" },
      el("button", { type: "button", class: "primary", text: "Start a new chat", onclick: newChat }),
      el("button", {
        type: "button",
        class: "secondary",
        text: "Edit an earlier message",
        onclick: () => {
          const users = path.filter((m) => m.role === "user");
          const target = users[users.length - 1];
          const node = target && ui.transcript.querySelector(`[data-id="${target.id}"]`);
          if (node) editMessage(target, node);
        },
      }),
      el("button", {
        type: "button",
        class: "secondary",
        text: "Give feedback",
        "aria-expanded": "false",
        "aria-controls": "ending-feedback",
        onclick: (event) => {
          feedback.hidden = !feedback.hidden;
          event.currentTarget.setAttribute("aria-expanded", String(!feedback.hidden));
          if (!feedback.hidden) feedback.querySelector("input")?.focus();
        },
      }),
    ),
    feedback,
  );
  return banner;
}

function feedbackForm(leafId) {
  const note = el("p", { class: "form-note", role: "status" });
  const comment = el("textarea", { id: "ending-comment", rows: "3", maxlength: "5000" });
  const choice = (value, label) =>
    el(
      "label",
      { class: "choice" },
      el("input", { type: "radio", name: "rating", value, required: true }),
      label,
    );
  const form = el(
    "form",
    { class: "feedback", id: "ending-feedback" },
    el(
      "fieldset",
      {},
      el("legend", { text: "Was ending this conversation right?" }),
      choice("agree", "Yes, it was right"),
      choice("disagree", "No, it shouldn't have ended"),
    ),
    el("label", { for: "ending-comment", text: "Anything you'd like to add? (optional)" }),
    comment,
    el("button", { type: "submit", class: "primary", text: "Send feedback" }),
    note,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const rating = form.querySelector("input[name=rating]:checked")?.value;
    try {
      await api.feedback(state.current, { leaf_id: leafId, rating, comment: comment.value.trim() });
      form.replaceChildren(
        el("p", {
          class: "form-note ok",
          role: "status",
          text: "Thank you — your feedback was received and will be reviewed.",
        }),
      );
    } catch (error) {
      note.textContent = error.message;
    }
  });
  return form;
}

// --- actions ----------------------------------------------------------------------------------

function editMessage(message, item) {
  const id = `edit-${message.id}`;
  const text = el("textarea", { id, rows: "3", required: true });
  text.value = message.content;
  const form = el(
    "form",
    { class: "edit" },
    el("label", { for: id, text: "Edit your message — this starts a new branch" }),
    text,
    el(
      "div",
      { class: "actions" },
      el("button", { type: "submit", class: "primary", text: "Send edit" }),
      el("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => render() }),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const content = text.value.trim();
    if (content) send(content, { edit_of: message.id });
  });
  item.querySelector(".bubble").replaceChildren(form);
  text.focus();
  text.setSelectionRange(text.value.length, text.value.length);
}

async function retry(messageId) {
  if (state.busy) return;
  setBusy(true, "Producing the reply again…");
  try {
    const result = await api.retry(state.current, messageId);
    await open(state.current, result.reply.id);
    say("A new version of the reply is shown.");
  } catch (error) {
    await failed(error);
  } finally {
    setBusy(false);
  }
}

async function send(content, extra = {}) {
  if (state.busy) return;
  setBusy(true, "Sending…");
  try {
    if (!state.current) {
      const title = content.length > 60 ? `${content.slice(0, 59)}…` : content;
      const created = await api.create(title);
      state.current = created.id;
      state.tree = { conversation: created, messages: [], branches: [] };
      await refreshList();
    }
    const body = { content, ...extra };
    const path = pathMessages();
    if (extra.edit_of) {
      const at = path.findIndex((m) => m.id === extra.edit_of);
      showPending(path.slice(0, at), content);
    } else {
      const last = path[path.length - 1];
      if (last && last.role === "assistant") body.parent_id = last.id;
      showPending(path, content);
    }
    let replyId = null;
    let streamError = null;
    await streamTurn(state.current, body, {
      turn: () => say("Reply on its way…"),
      delta: (text) => {
        ui.pending.textContent += text;
        scrollToEnd();
      },
      done: (data) => {
        replyId = data.reply.id;
      },
      error: (error) => {
        streamError = error;
      },
    });
    await open(state.current, replyId);
    await refreshList();
    if (streamError) say(`The reply failed: ${streamError.message}`);
    else say("Reply received.");
    if (branch()?.state.ended) document.getElementById("ended")?.focus();
    else ui.input?.focus();
  } catch (error) {
    await failed(error);
  } finally {
    setBusy(false);
  }
}

function showPending(path, content) {
  const items = path.map((m, i) => renderMessage(m, path, i));
  ui.pending = el("p", { class: "text" });
  items.push(
    el("li", { class: "turn user pending" }, el("div", { class: "bubble" }, el("p", { class: "text", text: content }))),
    el(
      "li",
      { class: "turn assistant pending", "aria-busy": "true" },
      el("div", { class: "bubble" }, ui.pending, el("span", { class: "typing", "aria-hidden": "true" })),
    ),
  );
  ui.transcript.replaceChildren(...items);
  if (ui.input) ui.input.value = "";
  scrollToEnd();
}

async function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    window.location.reload();
    return;
  }
  if (state.current) await open(state.current, state.leaf);
  say(error.message, true);
}

function setBusy(busy, message) {
  state.busy = busy;
  if (ui.send) ui.send.disabled = busy;
  document.body.toggleAttribute("aria-busy", busy);
  if (message) say(message);
}

function say(message, isError = false) {
  ui.status.textContent = message;
  ui.status.classList.toggle("error", isError);
}

start().catch((error) => {
  app.replaceChildren(el("p", { class: "form-error", role: "alert", text: error.message }));
});
