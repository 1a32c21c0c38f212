// The gateway console: every action is a call to the admin API with the signed-in
// identity's bearer token, which the API allows or refuses by that identity's roles.
// The token lives in sessionStorage only; nothing from the API is parsed as HTML
// (text nodes only), and the page's CSP forbids inline script.
"use strict";

(() => {
  const TOKEN_KEY = "gateway-console-token";
  const VIEWS = ["prompts", "reviews", "captures", "rollouts", "playground"];
  const state = { me: null, prompts: [], prompt: null, capture: null };

  // -- building the page -------------------------------------------------------------

  const $ = (selector) => document.querySelector(selector);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(parent, ...children) {
    parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  function option(value, text = value, selected = false) {
    return el("option", { value, text, selected });
  }

  function facts(dl, pairs) {
    fill(dl, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  function when(at) {
    if (at === undefined || at === null || at === "") return "";
    const date = typeof at === "number" ? new Date(at * 1000) : new Date(at);
    return Number.isNaN(date.getTime()) ? String(at) : date.toLocaleString();
  }

  function weights(map) {
    const entries = Object.entries(map || {}).filter(([, w]) => w > 0);
    return entries.length ? entries.map(([v, w]) => `${v} ${w}%`).join(" · ") : "—";
  }

  function notice(text) {
    $("#notice").textContent = text;
  }

  function problem(error) {
    const box = $("#problem");
    if (!error) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.textContent = error.message || String(error);
    box.hidden = false;
  }

  // -- the admin API ---------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, body) {
      const detail = body && body.error ? body.error : {};
      super(detail.message || `The gateway answered ${status}.`);
      this.status = status;
      this.code = detail.code || "";
    }
  }

  async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`/admin${path}`, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: { message: text.slice(0, 200) } };
    }
    if (response.status === 401 && state.me) signOut("Signed out: the token is no longer accepted.");
    if (!response.ok) throw new ApiFailure(response.status, data);
    return data;
  }

  const q = (params) => {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) search.set(k, v);
    const text = search.toString();
    return text ? `?${text}` : "";
  };
  const enc = encodeURIComponent;

  // Run an action: its failure is shown, never thrown at the page.
  async function attempt(action, done) {
    problem(null);
    try {
      const result = await action();
      if (done) notice(done);
      return result;
    } catch (error) {
      problem(error);
      return undefined;
    }
  }

  // -- identity and roles ----------------------------------------------------------

  function can(role) {
    const roles = state.me ? state.me.roles : [];
    return role === "viewer" || roles.includes("admin") || roles.includes(role);
  }

  function applyRoles(root = document) {
    for (const node of root.querySelectorAll("[data-needs]")) {
      node.hidden = !node.dataset.needs.split(" ").some(can);
    }
    $("#playground-refused").hidden = can("operator") || can("author");
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("#token");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";  // the token never stays in the page
    const me = await attempt(() => api("GET", "/whoami"));
    if (!me) {
      sessionStorage.removeItem(TOKEN_KEY);
      return;
    }
    await start(me);
  }

  function signOut(why = "Signed out.") {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = null;
    $("#who").hidden = true;
    $("#nav").hidden = true;
    for (const view of VIEWS) $(`#${view}`).hidden = true;
    $("#sign-in").hidden = false;
    notice(why);
    $("#token").focus();
  }

  async function start(me) {
    state.me = me;
    $("#who-name").textContent = me.name;
    $("#who-roles").textContent = me.roles.join(", ");
    $("#who").hidden = false;
    $("#nav").hidden = false;
    $("#sign-in").hidden = true;
    applyRoles();
    notice(`Signed in as ${me.name}.`);
    if (!location.hash) location.hash = "#prompts";
    await route();
  }

  // -- navigation: #view or #prompts/NAME --------------------------------------------

  async function route() {
    if (!state.me) return;
    const [view, ...rest] = location.hash.slice(1).split("/");
    const shown = VIEWS.includes(view) ? view : "prompts";
    for (const name of VIEWS) $(`#${name}`).hidden = name !== shown;
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.getAttribute("href") === `#${shown}`) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    problem(null);
    if (shown === "prompts") {
      await loadPrompts();
      const name = rest.length ? decodeURIComponent(rest.join("/")) : "";
      if (name) await openPrompt(name);
      else $("#prompt-detail").hidden = true;
    } else if (shown === "reviews") await loadReviews();
    else if (shown === "captures") await loadCaptures();
    else if (shown === "rollouts") await loadRollouts();
    else await loadPlayground();
  }

  // -- prompts ----------------------------------------------------------------------

  async function loadPrompts() {
    const data = await attempt(() => api("GET", "/prompts"));
    if (!data) return;
    state.prompts = data.prompts;
    fill($("#prompt-list tbody"), data.prompts.map((p) => el("tr", {},
      el("th", { scope: "row" }, el("a", { href: `#prompts/${enc(p.name)}`, text: p.name })),
      el("td", { text: p.versions.length }),
      el("td", { text: weights(p.routing && p.routing.weights) }),
      el("td", { text: Object.entries(p.labels).map(([l, v]) => `${l} → ${v}`).join(", ") || "—" }),
      el("td", { text: p.owner || "—" }),
    )));
  }

  async function openPrompt(name) {
    const [prompt, history] = await attempt(() => Promise.all([
      api("GET", `/prompts/${enc(name)}`),
      api("GET", `/prompts/${enc(name)}/history?limit=50`),
    ])) || [];
    if (!prompt) return;
    state.prompt = prompt;
    $("#prompt-detail").hidden = false;
    $("#prompt-title").textContent = prompt.name;
    facts($("#prompt-docs"), [
      ["Description", prompt.description], ["Owner", prompt.owner],
      ["Known issues", prompt.known_issues], ["Shadow", shadowText(prompt.routing)],
    ]);
    renderVersions(prompt);
    renderHistory(history.history);
    $("#diff-result").hidden = true;
    applyRoles($("#prompt-detail"));
  }

  async function refreshPrompt(name) {
    await loadPrompts();
    await openPrompt(name);
  }

  function shadowText(routing) {
    const shadow = routing && routing.shadow;
    if (!shadow || !shadow.versions.length) return "";
    return `${shadow.versions.join(", ")} at ${Math.round(shadow.sample_rate * 100)}%`;
  }

  function renderVersions(prompt) {
    const live = (prompt.routing && prompt.routing.weights) || {};
    const labelsOf = (v) => Object.entries(prompt.labels).filter(([, to]) => to === v).map(([l]) => l);
    fill($("#versions tbody"), [...prompt.versions].reverse().map((v) => el("tr", {},
      el("th", { scope: "row", text: v.version }),
      el("td", {}, el("span", { class: `status ${v.status}`, text: v.status })),
      el("td", { text: live[v.version] ? `${live[v.version]}%` : "—" }),
      el("td", { text: labelsOf(v.version).join(", ") || "—" }),
      el("td", { text: v.note || "" }),
      el("td", { text: `${v.created_by || "?"}, ${when(v.created_at)}` }),
      el("td", { text: v.approved_by || "—" }),
      el("td", { text: v.test_run ? `${v.test_run.verdict} (${v.test_run.dataset})` : "—" }),
      el("td", {}, v.status !== "approved" && can("approver")
        ? el("button", { type: "button", onclick: () => approveVersion(prompt.name, v.version),
          "aria-label": `Approve ${v.version}`, text: "Approve" })
        : null),
    )));
    const ids = prompt.versions.map((v) => v.version);
    const newest = ids[ids.length - 1];
    const previous = ids.length > 1 ? ids[ids.length - 2] : newest;
    fill($("#diff-from"), ids.map((id) => option(id, id, id === previous)));
    fill($("#diff-to"), ids.map((id) => option(id, id, id === newest)));
    fill($("#label-version"), ids.map((id) => option(id, id, id === newest)));
    fill($("#routing-weights"), ids.map((id) => el("div", { class: "weight" },
      el("label", { for: `weight-${id}`, text: `${id} (%)` }),
      el("input", { id: `weight-${id}`, type: "number", min: 0, max: 100, step: 1,
        value: live[id] || 0, "data-version": id }),
    )));
  }

  function renderHistory(entries) {
    fill($("#history tbody"), entries.map((e) => el("tr", {},
      el("td", {}, el("time", { datetime: e.at, text: when(e.at) })),
      el("td", { text: e.kind }),
      el("td", { text: e.by }),
      el("td", { text: e.version || "" }),
      el("td", { text: e.reason || "" }),
    )));
  }

  async function approveVersion(name, version) {
    const done = await attempt(
      () => api("POST", `/prompts/${enc(name)}/versions/${enc(version)}/approve`, {}),
      `${version} approved.`);
    if (done) await refreshPrompt(name);
  }

  async function saveRouting(event) {
    event.preventDefault();
    const prompt = state.prompt;
    const chosen = {};
    for (const input of $("#routing-weights").querySelectorAll("input")) {
      const weight = Number(input.value);
      if (weight > 0) chosen[input.dataset.version] = weight;
    }
    const shadow = prompt.routing ? prompt.routing.shadow : undefined;
    const body = { weights: chosen, shadow, reason: $("#routing-reason").value || undefined };
    const done = await attempt(() => api("PUT", `/prompts/${enc(prompt.name)}/routing`, body),
      "Routing saved.");
    if (done) await refreshPrompt(prompt.name);
  }

  async function setLabel(event) {
    event.preventDefault();
    const prompt = state.prompt;
    const label = $("#label-name").value.trim();
    const version = $("#label-version").value;
    const done = await attempt(
      () => api("PUT", `/prompts/${enc(prompt.name)}/labels/${enc(label)}`, { version }),
      `${label} → ${version}.`);
    if (done) await refreshPrompt(prompt.name);
  }

  async function showDiff(event) {
    event.preventDefault();
    const name = state.prompt.name;
    const from = $("#diff-from").value;
    const to = $("#diff-to").value;
    const diff = await attempt(() => api("GET", `/prompts/${enc(name)}/diff${q({ from, to })}`));
    if (!diff) return;
    $("#diff-result").hidden = false;
    $("#diff-summary").textContent = diff.changed.length
      ? `${diff.from} → ${diff.to}: changed ${diff.changed.join(", ")}.`
      : `${diff.from} and ${diff.to} are the same.`;
    fill($("#diff-output"), diff.diff.split("\n").filter((l, i, all) => l || i < all.length - 1)
      .map((line) => el("span", { class: diffClass(line), text: line })));
  }

  function diffClass(line) {
    if (line.startsWith("+++") || line.startsWith("---")) return "file";
    if (line.startsWith("@@")) return "hunk";
    if (line.startsWith("+")) return "added";
    if (line.startsWith("-")) return "removed";
    return "same";
  }

  // -- the review queue ------------------------------------------------------------

  async function loadReviews(event) {
    if (event) event.preventDefault();
    const filter = q({ state: $("#review-state").value, prompt: $("#review-prompt").value.trim() });
    const data = await attempt(() => api("GET", `/reviews${filter}`));
    if (!data) return;
    const items = data.data || [];
    $("#review-empty").hidden = items.length > 0;
    fill($("#review-list"), items.map(reviewCard));
  }

  function reviewCard(item) {
    const title = `review-${item.id}`;
    const pending = item.state === "pending";
    const answerBox = el("textarea", { id: `${title}-answer`, rows: 4 });
    answerBox.value = item.edited_answer || item.answer || "";
    const note = el("input", { id: `${title}-note`, type: "text" });
    const decide = (how) => (event) => {
      event.preventDefault();
      decideReview(item, how, note.value, answerBox.value);
    };
    return el("li", {}, el("article", { class: "panel", "aria-labelledby": title },
      el("h3", { id: title, text: `${item.kind === "held" ? "Held" : "Flagged"} answer · ${
        item.prompt ? `${item.prompt}@${item.version}` : `route ${item.route}`}` }),
      el("dl", { class: "facts" },
        ...[["Review", item.id], ["State", item.state], ["Guard", item.guard],
          ["Reason", item.reason], ["Route", item.route], ["Key", item.key],
          ["Created", when(item.created_at)], ["Decided by", item.decided_by],
          ["Note", item.note]]
          .filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
      el("h4", { text: "Conversation" }),
      messageList(item.messages),
      el("h4", { text: "Answer" }),
      el("pre", { class: "answer", text: item.answer || "" }),
      pending && can("reviewer") ? el("form", { class: "stack decision",
        onsubmit: (event) => event.preventDefault() },
        el("label", { for: note.id, text: "Note" }), note,
        el("label", { for: answerBox.id, text: "Edited answer (for “Approve with edited answer”)" }),
        answerBox,
        el("div", { class: "row" },
          el("button", { type: "button", onclick: decide("approve"), text: "Approve" }),
          el("button", { type: "button", onclick: decide("edit"), text: "Approve with edited answer" }),
          el("button", { type: "button", class: "danger", onclick: decide("reject"), text: "Reject" }),
        )) : null,
    ));
  }

  function messageItems(messages) {
    return (messages || []).map((m) => el("li", {},
      el("span", { class: "who", text: m.role || "?" }),
      el("span", { text: typeof m.content === "string" ? m.content : JSON.stringify(m.content) }),
    ));
  }

  function messageList(messages) {
    return el("ol", { class: "messages" }, messageItems(messages));
  }

  async function decideReview(item, how, note, edited) {
    const path = `/reviews/${enc(item.id)}/${how === "reject" ? "reject" : "approve"}`;
    const body = { note };
    if (how === "edit") body.edited_answer = edited;
    const verb = how === "reject" ? "rejected" : "approved";
    const done = await attempt(() => api("POST", path, body), `Review ${item.id} ${verb}.`);
    if (done) await loadReviews();
  }

  // -- captures --------------------------------------------------------------------

  // One feedback per client key: [{key, value, score, kind, signal, comment, at}].
  function feedbackText(feedback) {
    const entries = feedback || [];
    if (!entries.length) return "—";
    return entries.map((f) => [f.value, f.kind === "implicit" ? `(${f.signal})` : null,
      f.comment ? `“${f.comment}”` : null, f.key ? `from ${f.key}` : null]
      .filter(Boolean).join(" ")).join("; ");
  }

  function labelNames(labels) {
    return (labels || []).map((l) => l.label);
  }

  async function loadCaptures(event) {
    if (event) event.preventDefault();
    const filter = q({ prompt: $("#capture-prompt").value.trim(),
      label: $("#capture-label").value.trim(), feedback: $("#capture-feedback").value, limit: "50" });
    const data = await attempt(() => api("GET", `/captures${filter}`));
    if (!data) return;
    fill($("#capture-list tbody"), data.captures.map((c) => el("tr", {},
      el("td", { text: when(c.ts) }),
      el("td", { text: c.prompt ? `${c.prompt}@${c.version}` : c.route }),
      el("td", { text: c.status }),
      el("td", { text: `${Math.round(c.latency_ms)} ms` }),
      el("td", { text: feedbackText(c.feedback) }),
      el("td", { text: labelNames(c.labels).join(", ") || "—" }),
      el("td", {}, el("button", { type: "button", onclick: () => openCapture(c.request_id),
        "aria-label": `Open capture ${c.request_id}`, text: "Open" })),
    )));
  }

  async function openCapture(id) {
    const capture = await attempt(() => api("GET", `/captures/${enc(id)}`));
    if (!capture) return;
    state.capture = capture;
    const request = capture.request || {};
    $("#capture-detail").hidden = false;
    $("#capture-title").textContent = `Capture ${capture.request_id}`;
    facts($("#capture-facts"), [
      ["Prompt", capture.prompt ? `${capture.prompt}@${capture.version}` : ""],
      ["Route", capture.route], ["Target", `${capture.provider} ${capture.model}`],
      ["Status", capture.status], ["Latency", `${capture.latency_ms} ms`],
      ["Tokens", capture.usage ? `${capture.usage.input_tokens} in, ${capture.usage.output_tokens} out` : ""],
      ["Cost", capture.cost_usd !== null && capture.cost_usd !== undefined ? `$${capture.cost_usd.toFixed(6)}` : ""],
      ["Variables", request.variables && Object.keys(request.variables).length ? JSON.stringify(request.variables) : ""],
      ["When", when(capture.ts)],
    ]);
    fill($("#capture-messages"), messageItems([...(request.prompt_messages || []), ...(request.messages || [])]));
    $("#capture-answer").textContent = capture.answer || "";
    $("#capture-feedback-text").textContent = feedbackText(capture.feedback);
    fill($("#capture-labels"), (capture.labels || []).map((l) => el("li", {},
      el("strong", { text: l.label }), l.note ? ` — ${l.note}` : "",
      ` (${l.by}, ${when(l.at)})`)));
    if (!(capture.labels || []).length) fill($("#capture-labels"), el("li", { text: "none yet" }));
    applyRoles($("#capture-detail"));
    $("#capture-detail").scrollIntoView({ block: "nearest" });
  }

  async function labelCapture(event) {
    event.preventDefault();
    const id = state.capture.request_id;
    const label = $("#new-label").value.trim();
    const body = { label, note: $("#new-label-note").value };
    const done = await attempt(() => api("POST", `/captures/${enc(id)}/labels`, body),
      `Labelled ${label}.`);
    if (done === undefined) return;
    $("#new-label").value = "";
    $("#new-label-note").value = "";
    await openCapture(id);
    await loadCaptures();
  }

  // -- rollouts --------------------------------------------------------------------

  async function rolloutOf(name) {
    try {
      return await api("GET", `/prompts/${enc(name)}/rollout`);
    } catch (error) {
      if (error.status === 404) return null;
      throw error;
    }
  }

  async function loadRollouts() {
    const found = await attempt(async () => {
      await loadPrompts();
      const all = await Promise.all(state.prompts.map(async (p) => {
        const rollout = await rolloutOf(p.name);
        if (!rollout) return null;
        const history = await api("GET", `/prompts/${enc(p.name)}/history?limit=200`);
        return { rollout, decisions: history.history.filter((e) => e.kind === "rollout") };
      }));
      return all.filter(Boolean);
    });
    if (!found) return;
    $("#rollout-empty").hidden = found.length > 0;
    fill($("#rollout-list"), found.map(rolloutCard));
  }

  function rolloutCard({ rollout: r, decisions }) {
    const id = `rollout-${r.prompt}`;
    const act = (what, method, path, danger = false) => el("button", { type: "button", text: what,
      class: danger ? "danger" : undefined,
      onclick: async () => {
        if (await attempt(() => api(method, `/prompts/${enc(r.prompt)}/rollout${path}`, {}),
          `${r.prompt}: ${what.toLowerCase()}.`)) await loadRollouts();
      } });
    const active = r.state === "running" || r.state === "paused";
    return el("article", { class: "panel", "aria-labelledby": id },
      el("h3", { id, text: `${r.prompt}: ${r.version} — ${r.state.replace("_", " ")} at ${r.step}%` }),
      el("dl", { class: "facts" }, [["Steps", r.steps.map((s) => `${s}%`).join(", ")],
        ["Weights", weights(r.weights)], ["Baseline", weights(r.baseline)],
        ["On breach", r.on_breach], ["Started", `${when(r.started_at)} by ${r.started_by || "?"}`],
        ["Driver", r.driver || "—"]].flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
      active && can("operator") ? el("div", { class: "row" },
        r.state === "running" ? act("Pause", "POST", "/pause") : act("Resume", "POST", "/resume"),
        el("span", { class: "spacer" }),
        act("Abort", "DELETE", "", true)) : null,
      el("h4", { text: "Decisions" }),
      el("table", {}, el("thead", {}, el("tr", {}, ["When", "Decision", "Step", "By", "Why"]
        .map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, [...r.events].reverse().map((e) => el("tr", {},
        el("td", { text: when(e.at) }), el("td", { text: e.event }), el("td", { text: `${e.step}%` }),
        el("td", { text: e.by }), el("td", { text: e.reason }))))),
      el("h4", { text: "Routing changes in the history" }),
      decisions.length ? el("ul", {}, decisions.map((e) => el("li", {},
        el("time", { datetime: e.at, text: when(e.at) }), ` ${e.by}: ${e.reason}`))) :
        el("p", { text: "None yet." }),
    );
  }

  // -- the playground ---------------------------------------------------------------

  async function loadPlayground() {
    if (!state.prompts.length) await loadPrompts();
    const select = $("#play-prompt");
    const current = select.value;
    fill(select, state.prompts.map((p) => option(p.name, p.name, p.name === current)));
    playVersions();
  }

  function playVersions() {
    const prompt = state.prompts.find((p) => p.name === $("#play-prompt").value);
    const ids = prompt ? prompt.versions.map((v) => v.version) : [];
    const live = prompt && prompt.routing ? prompt.routing.weights : {};
    const serving = ids.filter((id) => live[id] > 0).sort((a, b) => live[b] - live[a])[0] || ids[0];
    const newest = ids[ids.length - 1];
    fill($("#play-a"), ids.map((id) => option(id, id, id === serving)));
    fill($("#play-b"), ids.map((id) => option(id, id, id === newest)));
  }

  async function runPlayground(event) {
    event.preventDefault();
    const name = $("#play-prompt").value;
    let variables;
    try {
      variables = JSON.parse($("#play-variables").value || "{}");
    } catch {
      problem(new Error("Variables must be a JSON object, like {\"product\": \"Acme\"}."));
      return;
    }
    const body = { versions: [$("#play-a").value, $("#play-b").value], variables };
    const message = $("#play-message").value;
    if (message.trim()) body.messages = [{ role: "user", content: message }];
    const button = event.submitter || $("#playground-form button");
    button.disabled = true;
    notice("Running…");
    const data = await attempt(() => api("POST", `/prompts/${enc(name)}/playground`, body),
      `Ran ${name} on ${body.versions.join(" and ")}.`);
    button.disabled = false;
    if (!data) return;
    fill($("#playground-results"), data.results.map((r, i) => {
      const id = `play-result-${i}`;
      const usage = r.usage ? `${r.usage.input_tokens} in, ${r.usage.output_tokens} out` : "—";
      return el("article", { class: "panel", "aria-labelledby": id },
        el("h3", { id, text: `${i === 0 ? "A" : "B"}: ${r.version}` }),
        r.error ? el("p", { class: "problem", text: `${r.status} ${r.error}` }) : null,
        el("pre", { class: "answer", text: r.answer || "" }),
        el("dl", { class: "facts" }, [["Status", r.status], ["Latency", `${r.latency_ms} ms`],
          ["Tokens", usage], ["Cost", r.cost_usd === null ? "—" : `$${r.cost_usd.toFixed(6)}`],
          ["Target", r.provider ? `${r.provider} ${r.model}` : "—"]]
          .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
    }));
  }

  // -- start -----------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", async () => {
    $("#sign-in-form").addEventListener("submit", signIn);
    $("#sign-out").addEventListener("click", () => signOut());
    $("#routing-form").addEventListener("submit", saveRouting);
    $("#label-form").addEventListener("submit", setLabel);
    $("#diff-form").addEventListener("submit", showDiff);
    $("#review-filter").addEventListener("submit", loadReviews);
    $("#capture-filter").addEventListener("submit", loadCaptures);
    $("#capture-label-form").addEventListener("submit", labelCapture);
    $("#play-prompt").addEventListener("change", playVersions);
    $("#playground-form").addEventListener("submit", runPlayground);
    window.addEventListener("hashchange", route);
    if (sessionStorage.getItem(TOKEN_KEY)) {
      const me = await attempt(() => api("GET", "/whoami"));
      if (me) await start(me);
      else signOut("Sign in again.");
    } else {
      $("#token").focus();
    }
  });
})();
