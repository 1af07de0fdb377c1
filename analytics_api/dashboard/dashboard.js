/*
 * Parley dashboard: a tenant's figures for its executives, or every tenant's for the platform operator.
 *
 * The page holds no data: it asks for a key once, keeps it in this tab's sessionStorage (cleared by "Sign out" or by
 * closing the tab) and reads /v1/analytics with it. Plain JavaScript, no build step; the page's CSP allows no inline
 * script, so every handler is attached here. Server text reaches the page only through textContent (never
 * innerHTML). Charts are plotly.js, served by Parley itself from /dashboard/assets/plotly.min.js.
 */
(() => {
  "use strict";

  const API = "/v1/analytics";
  const KEY_STORE = "parley:dashboard:key";
  const MODE_STORE = "parley:dashboard:mode"; // "tenant" or "operator", found out at sign-in
  const DAY_MS = 86_400_000;
  const DASH = "\u2014"; // what an unknown figure shows
  const NO_DATA = "No data for this range yet.";
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const COLORS = { blue: "#2456e8", green: "#1a7f37", red: "#cf222e", purple: "#8250df", grey: "#6e7781" };
  const PLOT_CONFIG = { responsive: true, displaylogo: false, displayModeBar: false, scrollZoom: false };

  const $ = (id) => document.getElementById(id);
  let key = null;
  let mode = null;
  let generation = 0; // a newer load makes an older one's answers stale: they are never drawn

  // ---- Small helpers ---------------------------------------------------------------------------------------------

  // Builds an element: attributes through setAttribute, text through textContent, nothing ever parsed as HTML.
  function el(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  const isNum = (value) => typeof value === "number" && Number.isFinite(value);
  const COUNT = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const PERCENT = new Intl.NumberFormat(undefined, {
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1,
  });
  const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });
  const count = (value) => (isNum(value) ? COUNT.format(value) : DASH);
  const percent = (value) => (isNum(value) ? PERCENT.format(value) : DASH);
  const score = (value) => (isNum(value) ? (value > 0 ? "+" : "") + value.toFixed(2) : DASH);
  const day = (iso) => DATE.format(new Date(iso + "T00:00:00Z"));

  // Dollars with two decimals, or two significant digits below a dollar (a conversation often costs a fraction of a
  // cent).
  function money(value) {
    if (!isNum(value)) return DASH;
    const size = Math.abs(value);
    const digits = size >= 1 || size === 0 ? 2 : Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(size))));
    return new Intl.NumberFormat(undefined, {
      style: "currency", currency: "USD", minimumFractionDigits: digits, maximumFractionDigits: digits,
    }).format(value);
  }

  const isoDay = (date) => date.toISOString().slice(0, 10);
  function todayUtc() {
    const now = new Date();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  }

  // ---- The API ---------------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail, title) {
      super(detail || title || `HTTP ${status}`);
      this.status = status;
      this.detail = detail;
      this.title = title;
    }
  }

  async function get(path, params = {}) {
    const url = new URL(API + path, location.origin);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new ApiError(0, "Could not reach the Parley server. Check your connection, then press Refresh.");
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body && body.detail, body && body.title);
    if (body === null) throw new ApiError(response.status, "The server's answer was not readable.");
    return body;
  }

  // What to tell the person about a failed request (RFC 9457 problem documents carry a human `detail`).
  function describe(error) {
    if (!(error instanceof ApiError)) return `Something went wrong on this page: ${error.message}`;
    if (error.status === 0) return error.detail;
    if (error.status === 401) return "That key was not accepted. Check that you pasted the whole key, then try again.";
    if (error.status === 403) return error.detail || "This key may not read the dashboard.";
    if (error.status === 429) return error.detail || "Too many requests: wait a moment, then press Refresh.";
    const what = error.detail || error.title || "no details";
    return `The server could not answer (${error.status}): ${what}`;
  }

  // ---- Date range ------------------------------------------------------------------------------------------------

  function presetSpan(days) {
    const end = todayUtc();
    return { from: isoDay(new Date(end.getTime() - (days - 1) * DAY_MS)), to: isoDay(end) };
  }

  function span() {
    const choice = $("range").value;
    if (choice !== "custom") return presetSpan(Number(choice));
    return { from: $("from").value, to: $("to").value };
  }

  // ---- Loading ---------------------------------------------------------------------------------------------------

  // The operator's admin token may read /platform and nothing else here; a tenant's key is refused there (403).
  async function detectMode(range) {
    try {
      return { mode: "operator", platform: await get("/platform", range) };
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) return { mode: "tenant" };
      throw error;
    }
  }

  async function fetchFigures(range, interval) {
    if (mode === "operator") return { range, platform: await get("/platform", range) };
    const series = (metric) => get("/timeseries", { ...range, metric, interval });
    const [overview, conversations, deflection, satisfaction, negative, mean, intents, unanswered, costs] =
      await Promise.all([
        get("/overview", range),
        series("conversations"),
        series("deflection_rate"),
        series("satisfaction"),
        series("negative_share"),
        series("sentiment_mean"),
        get("/intents", { ...range, limit: 10 }),
        get("/unanswered", { ...range, limit: 10 }),
        get("/costs", range),
      ]);
    return {
      range, interval, overview, intents, unanswered, costs,
      series: { conversations, deflection, satisfaction, negative, mean },
    };
  }

  function setBusy(busy) {
    $("dashboard").setAttribute("aria-busy", String(busy));
    $("refresh").disabled = busy;
    $("signin-button").disabled = busy;
  }

  function showProblem(node, message) {
    node.textContent = message || "";
    node.hidden = !message;
  }

  async function signIn(candidate) {
    showProblem($("signin-problem"), null);
    if (!candidate) {
      showProblem($("signin-problem"), "Paste your API key first.");
      return;
    }
    if (!/^[\x21-\x7e]+$/.test(candidate)) {
      showProblem($("signin-problem"), "That key was not accepted: a key has no spaces or special characters.");
      return;
    }
    const mine = ++generation;
    key = candidate;
    setBusy(true);
    $("status").textContent = "Signing in\u2026";
    try {
      const range = span();
      const found = await detectMode(range);
      mode = found.mode;
      const data = found.platform
        ? { range, platform: found.platform }
        : await fetchFigures(range, $("interval").value);
      if (mine !== generation) return;
      sessionStorage.setItem(KEY_STORE, key);
      sessionStorage.setItem(MODE_STORE, mode);
      $("key").value = "";
      showDashboard();
      render(data);
    } catch (error) {
      if (mine !== generation) return;
      key = null;
      mode = null;
      const message = describe(error);
      const forbidden = error instanceof ApiError && error.status === 403;
      showProblem($("signin-problem"), forbidden ? `This key cannot open the dashboard. ${message}` : message);
      $("status").textContent = "";
      $("key").focus();
    } finally {
      if (mine === generation) setBusy(false);
    }
  }

  async function refresh() {
    if (!key) return;
    const range = span();
    if (!range.from || !range.to) {
      showProblem($("problem"), "Choose both the first and the last day of the range.");
      return;
    }
    const mine = ++generation;
    setBusy(true);
    $("status").textContent = "Loading\u2026";
    try {
      const data = await fetchFigures(range, $("interval").value);
      if (mine !== generation) return;
      showProblem($("problem"), null);
      render(data);
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof ApiError && error.status === 401) {
        signOut(describe(error)); // revoked since sign-in, say
        return;
      }
      const shown = $("kpis").childElementCount || $("platform-kpis").childElementCount;
      $("status").textContent = shown ? "Still showing the figures of the last successful load." : "";
      showProblem($("problem"), describe(error));
    } finally {
      if (mine === generation) setBusy(false);
    }
  }

  // ---- Views -----------------------------------------------------------------------------------------------------

  function showDashboard() {
    $("signin").hidden = true;
    $("dashboard").hidden = false;
    $("signout").hidden = false;
    $("who").hidden = false;
    $("tenant-view").hidden = mode !== "tenant";
    $("operator-view").hidden = mode !== "operator";
    $("interval-field").hidden = mode !== "tenant";
  }

  function clearFigures() {
    for (const chart of document.querySelectorAll(".chart")) {
      if (window.Plotly) window.Plotly.purge(chart);
      chart.replaceChildren();
    }
    for (const id of ["kpis", "platform-kpis", "costs-figures"]) $(id).replaceChildren();
    for (const body of document.querySelectorAll(".table tbody")) body.replaceChildren();
    for (const id of ["who", "status", "footer", "costs-note"]) $(id).textContent = "";
    $("empty").hidden = true;
    showProblem($("problem"), null);
  }

  function signOut(message = null) {
    generation += 1; // anything still loading is dropped
    sessionStorage.removeItem(KEY_STORE);
    sessionStorage.removeItem(MODE_STORE);
    key = null;
    mode = null;
    clearFigures();
    setBusy(false);
    $("dashboard").hidden = true;
    $("signout").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
    showProblem($("signin-problem"), message);
    $("key").focus();
  }

  function render(data) {
    if (mode === "operator") renderPlatform(data);
    else renderTenant(data);
    const { from, to } = data.range;
    const store = (data.overview || data.platform).store;
    $("status").textContent = `Showing ${day(from)} to ${day(to)} (UTC).`;
    $("footer").textContent = `Figures from the ${store} metrics store, updated as the pipelines export each day.`;
  }

  // ---- KPI tiles -------------------------------------------------------------------------------------------------

  // better: +1 when up is good, -1 when up is bad, 0 when neither. change: how the difference is told.
  const KPIS = [
    {
      id: "conversations", label: "Conversations", value: (k) => k.conversations, format: count,
      change: "relative", better: 0,
      sub: (k) => `${count(k.messages)} messages`,
    },
    {
      id: "deflection", label: "Deflection rate", value: (k) => k.deflection_rate, format: percent,
      change: "points", better: 1,
      sub: (k) => {
        const closed = k.resolved + k.handoff + k.abandoned;
        return closed ? `${count(k.resolved)} of ${count(closed)} closed without an agent` : "no closed conversations";
      },
    },
    {
      id: "satisfaction", label: "Satisfaction", value: (k) => k.satisfaction, format: percent,
      change: "points", better: 1,
      sub: (k) => {
        const rated = k.feedback_up + k.feedback_down;
        return rated ? `${count(k.feedback_up)} of ${count(rated)} ratings positive` : "no rated answers";
      },
    },
    {
      id: "sentiment", label: "Sentiment (\u22121 to +1)", value: (k) => k.sentiment.mean, format: score,
      change: "score", better: 1,
      sub: (k) => (isNum(k.sentiment.negative_share)
        ? `${percent(k.sentiment.negative_share)} of messages negative` : "no messages scored"),
    },
    {
      id: "unanswered", label: "Unanswered questions", value: (k) => k.unanswered, format: count,
      change: "relative", better: -1,
      sub: () => "questions without a confident answer",
    },
    {
      id: "cost", label: "Cost per conversation", value: (k) => k.cost_per_conversation_usd, format: money,
      change: "relative", better: -1,
      sub: (k) => `${money(k.cost_usd)} in all`,
    },
  ];

  function describeChange(def, now, before, days) {
    const period = `the previous ${days} days`;
    if (!isNum(now) || !isNum(before)) return { text: `no figure for ${period}`, tone: "" };
    let delta;
    let text;
    if (def.change === "relative") {
      if (before === 0) return { text: now === 0 ? `same as ${period}` : `none in ${period}`, tone: "" };
      delta = (now - before) / Math.abs(before);
      text = PERCENT.format(Math.abs(delta));
      if (text === PERCENT.format(0)) delta = 0;
    } else if (def.change === "points") {
      delta = (now - before) * 100;
      text = `${Math.abs(delta).toFixed(1)} pts`;
      if (Math.abs(delta) < 0.05) delta = 0;
    } else {
      delta = now - before;
      text = Math.abs(delta).toFixed(2);
      if (Math.abs(delta) < 0.005) delta = 0;
    }
    if (delta === 0) return { text: `same as ${period}`, tone: "" };
    const arrow = delta > 0 ? "\u25B2" : "\u25BC";
    const tone = def.better === 0 ? "" : delta * def.better > 0 ? "good" : "bad";
    return { arrow, text: `${delta > 0 ? "+" : "\u2212"}${text} on ${period}`, tone };
  }

  function tile(id, label, value, sub, change) {
    const node = el("article", { class: "kpi", "data-kpi": id });
    node.append(el("h3", {}, label), el("p", { class: "kpi-value" }, value));
    if (sub) node.append(el("p", { class: "kpi-sub" }, sub));
    if (change) {
      const line = el("p", { class: `kpi-change ${change.tone}`.trim() });
      if (change.arrow) line.append(el("span", { "aria-hidden": "true" }, change.arrow + " "));
      line.append(document.createTextNode(change.text));
      node.append(line);
    }
    return node;
  }

  function renderKpis(overview) {
    const { kpis, previous, days } = overview;
    $("kpis").replaceChildren(...KPIS.map((def) => tile(
      def.id, def.label, def.format(def.value(kpis)), def.sub(kpis),
      describeChange(def, def.value(kpis), def.value(previous), days),
    )));
  }

  // ---- Charts ----------------------------------------------------------------------------------------------------

  function layout(extra = {}) {
    const { yaxis = {}, ...rest } = extra;
    return {
      autosize: true,
      height: 260,
      margin: { l: 50, r: 16, t: 28, b: 36 },
      font: { family: FONT, size: 12, color: "#1f2328" },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff",
      showlegend: true,
      legend: { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom" },
      hovermode: "x unified",
      xaxis: { type: "date", gridcolor: "#eaeef2", linecolor: "#d0d7de", automargin: true, fixedrange: true },
      yaxis: {
        gridcolor: "#eaeef2", zerolinecolor: "#d0d7de", rangemode: "tozero", automargin: true, fixedrange: true,
        ...yaxis,
      },
      ...rest,
    };
  }

  // Draws one chart, or says there is nothing to draw (every value missing, or every count zero).
  function plot(id, traces, chartLayout, label) {
    const node = $(id);
    const note = node.nextElementSibling;
    const hasData = traces.some((trace) => trace.y.some((value) => isNum(value) && value !== 0));
    if (!hasData || !window.Plotly) {
      if (window.Plotly) window.Plotly.purge(node);
      node.replaceChildren();
      node.hidden = true;
      note.textContent = window.Plotly ? NO_DATA : "The charts could not be loaded; the figures above are complete.";
      note.hidden = false;
      return;
    }
    node.hidden = false;
    note.hidden = true;
    node.setAttribute("aria-label", label);
    window.Plotly.react(node, traces, chartLayout, PLOT_CONFIG);
  }

  const xs = (points) => points.map((point) => point.start);
  const ys = (points) => points.map((point) => point.value);
  const markers = (points) => (points.length <= 45 ? "lines+markers" : "lines");
  const INTERVAL_WORD = { day: "day", week: "week", month: "month" };

  function renderCharts(series, interval) {
    const per = INTERVAL_WORD[interval];
    const conversations = series.conversations.points;
    const total = conversations.reduce((sum, point) => sum + (point.value || 0), 0);
    plot("chart-conversations", [{
      type: "bar", name: "Conversations", x: xs(conversations), y: ys(conversations),
      marker: { color: COLORS.blue },
      hovertemplate: `%{x|%b %-d, %Y}<br>%{y:,} conversations<extra></extra>`,
    }], layout({ showlegend: false, hovermode: "closest", margin: { l: 50, r: 16, t: 12, b: 36 } }),
    `Conversations per ${per}: ${conversations.length} bars, ${count(total)} in all`);

    const deflection = series.deflection.points;
    const satisfaction = series.satisfaction.points;
    plot("chart-quality", [
      {
        type: "scatter", mode: markers(deflection), name: "Deflection rate", x: xs(deflection), y: ys(deflection),
        line: { color: COLORS.green, width: 2 }, hovertemplate: "%{y:.1%}",
      },
      {
        type: "scatter", mode: markers(satisfaction), name: "Satisfaction", x: xs(satisfaction), y: ys(satisfaction),
        line: { color: COLORS.blue, width: 2, dash: "dot" }, hovertemplate: "%{y:.1%}",
      },
    ], layout({ yaxis: { tickformat: ".0%", range: [0, 1.02], rangemode: "normal" } }),
    `Deflection rate and satisfaction per ${per}`);

    const negative = series.negative.points;
    const mean = series.mean.points;
    plot("chart-sentiment", [
      {
        type: "scatter", mode: markers(negative), name: "Negative messages", x: xs(negative), y: ys(negative),
        line: { color: COLORS.red, width: 2 }, hovertemplate: "%{y:.1%}",
      },
      {
        type: "scatter", mode: markers(mean), name: "Mean sentiment (right)", x: xs(mean), y: ys(mean), yaxis: "y2",
        line: { color: COLORS.purple, width: 2, dash: "dot" }, hovertemplate: "%{y:+.2f}",
      },
    ], layout({
      margin: { l: 50, r: 44, t: 28, b: 36 },
      yaxis: { tickformat: ".0%", rangemode: "tozero" },
      yaxis2: {
        overlaying: "y", side: "right", range: [-1.05, 1.05], showgrid: false, zeroline: false, fixedrange: true,
        tickmode: "array", tickvals: [-1, -0.5, 0, 0.5, 1], ticktext: ["\u22121", "\u22120.5", "0", "+0.5", "+1"],
        automargin: true,
      },
    }), `Share of negative customer messages and mean sentiment per ${per}`);
  }

  // ---- Tenant view -----------------------------------------------------------------------------------------------

  function noneRow(columns, text = NO_DATA) {
    const row = el("tr", { class: "none" });
    row.append(el("td", { colspan: String(columns) }, text));
    return row;
  }

  function renderIntents(intents) {
    const body = $("intents").tBodies[0];
    if (!intents.length) {
      body.replaceChildren(noneRow(5));
      return;
    }
    const most = Math.max(...intents.map((intent) => intent.conversations), 1);
    body.replaceChildren(...intents.map((intent) => {
      const row = el("tr", { "data-intent": intent.intent });
      const name = el("th", { scope: "row" }, intent.intent);
      const bar = el("div", { class: "bar", "aria-hidden": "true" });
      bar.style.width = `${(100 * intent.conversations) / most}%`;
      name.append(bar);
      row.append(
        name,
        el("td", { class: "num" }, count(intent.conversations)),
        el("td", { class: "num" }, percent(intent.deflection_rate)),
        el("td", { class: "num optional" }, percent(intent.satisfaction)),
        el("td", { class: "num optional" }, percent(intent.negative_share)),
      );
      return row;
    }));
  }

  function renderUnanswered(questions) {
    const body = $("unanswered").tBodies[0];
    if (!questions.length) {
      body.replaceChildren(noneRow(3));
      return;
    }
    body.replaceChildren(...questions.map((question) => {
      const row = el("tr");
      row.append(
        el("th", { scope: "row" }, question.example || question.question),
        el("td", { class: "num" }, count(question.asked)),
        el("td", { class: "num optional" }, day(question.last_asked)),
      );
      return row;
    }));
  }

  function figure(id, label, value, sub = null) {
    const item = el("div", { "data-figure": id, class: id });
    const dd = el("dd", {}, value);
    if (sub) dd.append(el("span", { class: "sub" }, sub));
    item.append(el("dt", {}, label), dd);
    return item;
  }

  function renderCosts(costs) {
    const { baseline, routing, answers } = costs;
    const model = baseline.model || "the most expensive model";
    // No share means nothing would have been spent on the baseline either (no answers): no saving to speak of.
    const saved = isNum(costs.saved_usd) && isNum(costs.saved_share)
      ? `${money(costs.saved_usd)} (${percent(costs.saved_share)})` : DASH;
    const projected = routing.projected_saving_usd_per_day;
    const realised = routing.realised_saving_usd;
    $("costs-figures").replaceChildren(
      figure("saved", `Saved against always using ${model}`, saved),
      figure("per-conversation", "Cost per conversation", money(costs.cost_per_conversation_usd),
        `${money(costs.cost_usd)} for ${count(costs.conversations)} conversations`),
      figure("baseline", `Per conversation on ${model} alone`, money(baseline.cost_per_conversation_usd),
        isNum(baseline.cost_usd) ? `${money(baseline.cost_usd)} in all` : null),
      figure("projected", "Routing policy: projected saving", isNum(projected) ? `${money(projected)} a day` : DASH,
        `${count(routing.routes)} learned ${routing.routes === 1 ? "route" : "routes"}`),
      figure("realised", "Routing policy: realised saving", isNum(realised) ? money(realised) : DASH,
        `${count(routing.routed_answers)} routed answers in this range`),
      figure("answers", "Answered by", [
        `cache ${count(answers.cache)}`, `knowledge base ${count(answers.kb)}`,
        `local model ${count(answers.local)}`, `LLM ${count(answers.llm)}`,
      ].join(" \u00b7 ")),
    );
    const notes = [];
    if (!costs.daily.length) {
      // Nothing to explain.
    } else if (!baseline.model) {
      notes.push("No priced model in the provider catalog: there is nothing to measure savings against.");
    } else if (baseline.tokens_per_free_answer === "assumed") {
      notes.push("No model answers in this range: free answers are priced at an assumed size of a model answer.");
    } else {
      notes.push(`Baseline: every answer, including those from the cache and the knowledge base, written by ${model} ` +
        "at this tenant's mean tokens per model answer.");
    }
    $("costs-note").textContent = notes.join(" ");

    const daily = costs.daily;
    const traces = [{
      type: "scatter", mode: markers(daily), name: "Real cost", x: daily.map((d) => d.day),
      y: daily.map((d) => d.cost_usd), line: { color: COLORS.blue, width: 2 }, hovertemplate: "$%{y:,.4f}",
    }];
    if (baseline.model) {
      traces.push({
        type: "scatter", mode: markers(daily), name: `Always ${model}`, x: daily.map((d) => d.day),
        y: daily.map((d) => d.baseline_cost_usd), line: { color: COLORS.grey, width: 2, dash: "dash" },
        hovertemplate: "$%{y:,.4f}",
      });
    }
    plot("chart-costs", traces, layout({ yaxis: { tickprefix: "$" } }),
      `Daily cost against always using ${model}`);
  }

  function renderTenant(data) {
    const { overview, intents, unanswered, costs, series, interval } = data;
    $("who").textContent = overview.tenant_name || `Tenant ${overview.tenant_id}`;
    const k = overview.kpis;
    $("empty").hidden = Boolean(k.conversations || k.messages || intents.intents.length || unanswered.questions.length);
    renderKpis(overview);
    renderCharts(series, interval);
    renderIntents(intents.intents);
    renderCosts(costs);
    renderUnanswered(unanswered.questions);
  }

  // ---- Operator view ---------------------------------------------------------------------------------------------

  function renderPlatform(data) {
    const { tenants } = data.platform;
    $("who").textContent = "Platform operator";
    $("empty").hidden = tenants.length > 0;
    const sum = (field) => tenants.reduce((total, tenant) => total + (tenant[field] || 0), 0);
    const conversations = sum("conversations");
    const cost = sum("cost_usd");
    $("platform-kpis").replaceChildren(
      tile("tenants", "Tenants with conversations", count(tenants.filter((t) => t.conversations > 0).length)),
      tile("conversations", "Conversations", count(conversations), `${count(sum("messages"))} messages`),
      tile("unanswered", "Unanswered questions", count(sum("unanswered"))),
      tile("cost", "Cost", money(cost), `${money(conversations ? cost / conversations : null)} per conversation`),
    );
    const body = $("tenants").tBodies[0];
    if (!tenants.length) {
      body.replaceChildren(noneRow(8));
      return;
    }
    body.replaceChildren(...tenants.map((tenant) => {
      const row = el("tr", { "data-tenant": tenant.tenant_id });
      const name = el("th", { scope: "row" }, tenant.name || "(deleted tenant)");
      name.append(el("span", { class: "sub" }, tenant.tenant_id));
      row.append(
        name,
        el("td", { class: "num" }, count(tenant.conversations)),
        el("td", { class: "num optional" }, count(tenant.messages)),
        el("td", { class: "num optional" }, percent(tenant.deflection_rate)),
        el("td", { class: "num optional" }, percent(tenant.satisfaction)),
        el("td", { class: "num optional" }, count(tenant.unanswered)),
        el("td", { class: "num optional" }, money(tenant.cost_usd)),
        el("td", { class: "num" }, money(tenant.cost_per_conversation_usd)),
      );
      return row;
    }));
  }

  // ---- Wiring ----------------------------------------------------------------------------------------------------

  function showCustom(show) {
    $("custom-from").hidden = !show;
    $("custom-to").hidden = !show;
  }

  function start() {
    const today = isoDay(todayUtc());
    $("from").max = today;
    $("to").max = today;

    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      signIn($("key").value.trim());
    });
    $("signout").addEventListener("click", () => signOut());
    $("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      refresh();
    });
    $("range").addEventListener("change", () => {
      const custom = $("range").value === "custom";
      if (custom && (!$("from").value || !$("to").value)) {
        const preset = presetSpan(30);
        $("from").value = preset.from;
        $("to").value = preset.to;
      }
      showCustom(custom);
      refresh();
    });
    for (const id of ["from", "to"]) {
      $(id).addEventListener("change", () => {
        if ($("from").value && $("to").value) refresh();
      });
    }
    $("interval").addEventListener("change", refresh);

    key = sessionStorage.getItem(KEY_STORE);
    mode = sessionStorage.getItem(MODE_STORE);
    if (key && (mode === "tenant" || mode === "operator")) {
      showDashboard();
      refresh();
    } else {
      signOut();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
