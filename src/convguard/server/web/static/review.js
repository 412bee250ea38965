// The review dashboard (admin): statistics and charts, the queue of ended conversations with the
// turns that led to each end and the feedback on it, and replies people reported as wrong beside
// the decision they concern. Filters by time, category and action; export as JSON.

import { ApiError, api, el, signInForm, when } from "/static/api.js";
import { lines, stackedBars } from "/static/charts.js";

const app = document.getElementById("app");
const ACTIONS = ["allow", "guide", "redirect", "warn", "support", "confirm_end", "end"];
const ui = {};
const filters = { since: "", until: "", category: "", action: "" };

async function start() {
  let who;
  try {
    who = await api.whoami();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
  }
  if (!who || !who.account) {
    who = await signInForm(app, {
      title: "Sign in to review",
      intro: "The review dashboard needs an admin key (convguard keys create --admin).",
    });
  }
  document.getElementById("who").textContent = `Signed in as ${who.account}`;
  document.getElementById("account").hidden = false;
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api.signOut();
    window.location.reload();
  });
  if (!who.admin) {
    app.replaceChildren(
      el(
        "section",
        { class: "card" },
        el("h1", { text: "This dashboard needs an admin key" }),
        el("p", { text: "Sign out and sign in with a key made by `convguard keys create --admin`." }),
        el("p", {}, el("a", { href: "/", text: "Back to the chat" })),
      ),
    );
    document.body.dataset.ready = "true";
    return;
  }
  layout();
  await refresh();
  document.body.dataset.ready = "true";
}

function layout() {
  ui.form = filterForm();
  ui.tiles = el("div", { class: "tiles" });
  ui.charts = el("div", { class: "charts" });
  ui.queue = el("ol", { class: "queue", "aria-labelledby": "queue-title" });
  ui.queueCount = el("span", { class: "hint" });
  ui.reports = el("ol", { class: "reports", "aria-labelledby": "reports-title" });
  ui.status = el("p", { class: "status", role: "status" });
  app.replaceChildren(
    el("h1", { text: "Review" }),
    ui.form,
    ui.status,
    el("section", { "aria-labelledby": "summary-title" }, el("h2", { id: "summary-title", text: "Summary" }), ui.tiles),
    el("section", { "aria-labelledby": "charts-title" }, el("h2", { id: "charts-title", text: "Decisions over time" }), ui.charts),
    el(
      "section",
      { "aria-labelledby": "queue-title" },
      el("h2", { id: "queue-title", tabindex: "-1" }, "Ended conversations ", ui.queueCount),
      ui.queue,
    ),
    el("section", { "aria-labelledby": "reports-title" }, el("h2", { id: "reports-title", text: "Replies reported as wrong" }), ui.reports),
  );
}

function field(id, text, control) {
  control.id = id;
  return el("div", {}, el("label", { for: id, text }), control);
}

function filterForm() {
  ui.category = el("select", { name: "category" }, el("option", { value: "", text: "All categories" }));
  ui.action = el(
    "select",
    { name: "action" },
    el("option", { value: "", text: "All actions" }),
    ACTIONS.map((a) => el("option", { value: a, text: a.replace("_", " ") })),
  );
  ui.since = el("input", { type: "datetime-local", name: "since" });
  ui.until = el("input", { type: "datetime-local", name: "until" });
  const form = el(
    "form",
    { class: "filters card", "aria-label": "Filters" },
    field("f-since", "From", ui.since),
    field("f-until", "To", ui.until),
    field("f-category", "Category", ui.category),
    field("f-action", "Action", ui.action),
    el("button", { type: "submit", class: "primary", text: "Apply filters" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    filters.since = ui.since.value ? new Date(ui.since.value).toISOString() : "";
    filters.until = ui.until.value ? new Date(ui.until.value).toISOString() : "";
    filters.category = ui.category.value;
    filters.action = ui.action.value;
    await refresh();
  });
  return form;
}

function query() {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
  return params.toString();
}

async function refresh() {
  ui.status.textContent = "Loading…";
  ui.status.classList.remove("error");
  try {
    const [stats, queue, reports] = await Promise.all([
      api.stats(query()),
      api.review(),
      api.reports(new URLSearchParams({ ...(filters.since && { since: filters.since }), ...(filters.until && { until: filters.until }) }).toString()),
    ]);
    fillCategories(stats.categories);
    renderTiles(stats.totals);
    renderCharts(stats);
    renderQueue(queue.data.filter(matches));
    renderReports(reports.data.filter((r) => matchesDecision(r.decision)));
    ui.status.textContent = "Up to date.";
  } catch (error) {
    ui.status.textContent = error.message;
    ui.status.classList.add("error");
  }
}

function fillCategories(categories) {
  if (ui.category.options.length > 1) return;
  for (const [id, label] of Object.entries(categories)) {
    ui.category.append(el("option", { value: id, text: label }));
  }
}

function tile(name, value) {
  return el("div", { class: "tile" }, el("span", { class: "value", text: value }), el("span", { class: "name", text: name }));
}

function renderTiles(t) {
  ui.tiles.replaceChildren(
    tile("turns decided", String(t.turns)),
    tile("conversations", String(t.conversations)),
    tile("ended per 1,000 conversations", t.end_rate_per_1000.toLocaleString()),
    tile("redirect rate (redirect + warn)", `${(100 * t.redirect_rate).toFixed(1)} %`),
    tile("abuse toward the assistant", String(t.abuse_toward_assistant)),
    tile("distress in replies", String(t.assistant_distress)),
  );
}

function renderCharts(stats) {
  ui.charts.replaceChildren(
    stackedBars("by-action", "By action", stats.buckets, stats.by_action, stats.bucket),
    stackedBars("by-category", "By category", stats.buckets, stats.by_category, stats.bucket),
    lines(
      "welfare",
      "Welfare signals",
      stats.buckets,
      {
        abuse_toward_assistant: stats.welfare.abuse_toward_assistant,
        distress_in_replies: stats.welfare.assistant_distress,
      },
      stats.bucket,
    ),
  );
}

function inWindow(iso) {
  const t = new Date(iso).getTime();
  if (filters.since && t < new Date(filters.since).getTime()) return false;
  if (filters.until && t >= new Date(filters.until).getTime()) return false;
  return true;
}

function matchesDecision(decision) {
  if (filters.action && (!decision || decision.action !== filters.action)) return false;
  if (filters.category && (!decision || !decision.categories.includes(filters.category))) return false;
  return true;
}

function matches(item) {
  if (!inWindow(item.ending.created_at)) return false;
  const decided = item.path.filter((m) => m.decision);
  if (filters.action && !decided.some((m) => m.decision.action === filters.action)) return false;
  if (filters.category && !decided.some((m) => m.decision.categories.includes(filters.category))) return false;
  return true;
}

function pill(text, kind = "") {
  return el("span", { class: `pill ${kind}`, text: text.replaceAll("_", " ") });
}

function pathList(path) {
  return el(
    "ol",
    { class: "path" },
    path.map((m) =>
      el(
        "li",
        { class: m.role },
        el("span", { class: "role", text: m.role === "user" ? "User" : "Assistant" }),
        m.decision ? pill(m.decision.action, m.decision.action) : null,
        m.decision && m.decision.categories.length ? el("span", { class: "hint", text: ` ${m.decision.categories.join(", ")}` }) : null,
        el("div", { class: "said", text: m.content }),
      ),
    ),
  );
}

function renderQueue(items) {
  ui.queueCount.textContent = `(${items.length})`;
  if (!items.length) {
    ui.queue.replaceChildren(el("li", { class: "empty-note", text: "No ended conversations match these filters." }));
    return;
  }
  ui.queue.replaceChildren(
    ...items.map((item) => {
      const title = item.conversation.title || item.conversation.id;
      const notes = item.feedback.length
        ? el(
            "ul",
            {},
            item.feedback.map((f) =>
              el("li", {}, f.rating ? pill(f.rating === "agree" ? "agrees" : "disagrees", f.rating) : null, " ", f.comment || "(no comment)", el("span", { class: "hint", text: ` · ${when(f.created_at)}` })),
            ),
          )
        : el("p", { class: "empty-note", text: "No feedback on this ending." });
      return el(
        "li",
        { class: "queue-item" },
        el(
          "div",
          { class: "queue-head" },
          el("h3", { text: title }),
          el("span", {}, pill(`ended by ${item.ending.initiator}`, "end"), el("span", { class: "hint", text: ` ${when(item.ending.created_at)}` })),
        ),
        el("p", {}, el("strong", { text: "Reason: " }), item.ending.reason),
        el(
          "div",
          { class: "side-by-side" },
          el("div", {}, el("h4", { text: "The turns that led here" }), pathList(item.path)),
          el("div", { class: "notes" }, el("h4", { text: "Feedback" }), notes),
        ),
        el("div", { class: "actions" }, exportButton(item.conversation.id, title)),
      );
    }),
  );
}

function renderReports(items) {
  if (!items.length) {
    ui.reports.replaceChildren(el("li", { class: "empty-note", text: "No reports match these filters." }));
    return;
  }
  ui.reports.replaceChildren(
    ...items.map((r) =>
      el(
        "li",
        { class: "report-item" },
        el(
          "div",
          { class: "queue-head" },
          el("h3", {}, r.rating ? pill(r.rating === "disagree" ? "reported wrong" : "agrees", r.rating) : null, " ", r.comment || "(no comment)"),
          el("span", { class: "hint", text: when(r.created_at) }),
        ),
        el(
          "div",
          { class: "side-by-side" },
          el(
            "div",
            {},
            el("h4", { text: "The turn" }),
            pathList([r.answered, r.turn].filter(Boolean)),
          ),
          el(
            "div",
            { class: "notes" },
            el("h4", { text: "The decision it concerns" }),
            r.decision
              ? el(
                  "dl",
                  { class: "decision" },
                  el("dt", { text: "Action" }),
                  el("dd", {}, pill(r.decision.action, r.decision.action)),
                  el("dt", { text: "Reason" }),
                  el("dd", { text: r.decision.reason }),
                  el("dt", { text: "Categories" }),
                  el("dd", { text: r.decision.categories.join(", ") || "none" }),
                  el("dt", { text: "Flags" }),
                  el("dd", { text: r.decision.flags.join(", ") || "none" }),
                )
              : el("p", { class: "empty-note", text: "No decision stored for this turn." }),
          ),
        ),
        el("div", { class: "actions" }, exportButton(r.conversation_id, r.conversation_id)),
      ),
    ),
  );
}

function exportButton(id, title) {
  return el("button", {
    type: "button",
    class: "secondary",
    text: "Export as JSON",
    "aria-label": `Export as JSON: ${title}`,
    onclick: async () => {
      const data = await api.exported(id);
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const link = el("a", { href: URL.createObjectURL(blob), download: `conversation-${id.slice(0, 12)}.json` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
      ui.status.textContent = `Exported conversation ${title}.`;
    },
  });
}

start().catch((error) => {
  app.replaceChildren(el("p", { class: "form-error", role: "alert", text: error.message }));
});
