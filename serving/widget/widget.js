/*
 * Parley chat widget. Embed with:
 *   <script src="https://parley.example/widget.js" data-key="pk_..." defer></script>
 * Optional data-api="https://parley.example" (defaults to the origin this script came from).
 *
 * Self-contained on purpose: it runs inside someone else's page, so it loads nothing but the Parley API, prefixes
 * every class with "parley-", and writes server or visitor text only through textContent (never innerHTML).
 */
(() => {
  "use strict";

  const script = document.currentScript;
  if (!script || window.__parleyWidget) return; // loaded twice on one page: keep the first
  window.__parleyWidget = true;

  const key = script.getAttribute("data-key") || "";
  const api = (script.getAttribute("data-api") || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  // One conversation per widget key, so two Parley tenants on one site do not share one.
  const storeKey = "parley:" + key;
  let conversation = null; // {id, visitor_token}
  let busy = false;

  const CSS = `
.parley-root{all:initial;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328}
.parley-root *{box-sizing:border-box;font:inherit;color:inherit}
.parley-root svg{display:block;width:100%;height:100%}
.parley-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;padding:15px;border:0;
  border-radius:50%;background:#2456e8;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}
.parley-root button:focus-visible{outline:3px solid #9db6ff;outline-offset:2px}
.parley-panel{position:fixed;right:20px;bottom:88px;z-index:2147483000;display:flex;flex-direction:column;
  width:min(370px,calc(100vw - 40px));height:min(540px,calc(100vh - 110px));background:#fff;border-radius:12px;
  box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}
.parley-panel[hidden],.parley-error[hidden]{display:none}
.parley-header{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;background:#2456e8;
  color:#fff;font-weight:600}
.parley-close{border:0;background:none;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 6px}
.parley-messages{flex:1;overflow-y:auto;padding:12px;background:#f6f7f9}
.parley-msg{margin:0 0 10px;max-width:88%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;
  overflow-wrap:anywhere}
.parley-msg-user{margin-left:auto;background:#2456e8;color:#fff}
.parley-msg-bot,.parley-msg-agent{background:#fff;border:1px solid #e1e4e8}
.parley-msg-agent{border-color:#f0c36d}
.parley-sources{margin-top:6px;font-size:12px;color:#57606a;white-space:normal}
.parley-sources a{color:#2456e8;text-decoration:underline}
.parley-source{display:block}
.parley-actions{margin-top:6px;display:flex;gap:6px;flex-wrap:wrap;white-space:normal}
.parley-actions button{border:1px solid #d0d7de;background:#fff;color:#57606a;border-radius:6px;padding:3px 8px;
  cursor:pointer}
.parley-actions button[aria-pressed=true]{background:#dbe5ff;border-color:#2456e8}
.parley-actions svg{width:16px;height:16px}
.parley-note{font-size:12px;color:#57606a;margin:0 0 10px}
.parley-error{padding:6px 12px;font-size:12px;color:#a40e26;background:#ffebe9}
.parley-form{display:flex;gap:6px;padding:10px;border-top:1px solid #e1e4e8;background:#fff}
.parley-input{flex:1;min-width:0;padding:8px 10px;border:1px solid #d0d7de;border-radius:8px;background:#fff}
.parley-send{border:0;border-radius:8px;padding:0 14px;background:#2456e8;color:#fff;cursor:pointer}
.parley-send:disabled{opacity:.5;cursor:default}`;

  // Builds an element: attributes through setAttribute, text through textContent, nothing ever parsed as HTML.
  function el(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  // Inline SVG icons (paths from Google's Material Icons, Apache-2.0) instead of emoji, which many systems have no
  // font for. Made with createElementNS, so still no HTML parsing.
  const ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z",
    thumb:
      "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 " +
      "7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
  };
  function icon(name, upsideDown = false) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    if (upsideDown) svg.setAttribute("transform", "rotate(180)");
    const path = svg.appendChild(document.createElementNS(ns, "path"));
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "currentColor");
    return svg;
  }

  // --- the panel
  const ui = {};

  function build() {
    ui.root = el("div", { class: "parley-root" });
    ui.root.appendChild(el("style", {}, CSS));
    ui.panel = el("div", {
      id: "parley-panel", class: "parley-panel", role: "dialog", "aria-labelledby": "parley-title", hidden: "",
    });
    const header = el("div", { class: "parley-header" });
    header.appendChild(el("span", { id: "parley-title" }, "Chat with us"));
    const close = header.appendChild(
      el("button", { type: "button", class: "parley-close", "aria-label": "Close chat" }, "\u00D7")
    );
    ui.list = el("div", { class: "parley-messages", role: "log", "aria-live": "polite" });
    ui.error = el("div", { class: "parley-error", role: "alert", hidden: "" });
    const form = el("form", { class: "parley-form" });
    ui.input = form.appendChild(el("input", {
      type: "text", class: "parley-input", "aria-label": "Your message", placeholder: "Ask a question\u2026",
      autocomplete: "off", maxlength: "4000",
    }));
    ui.send = form.appendChild(el("button", { type: "submit", class: "parley-send", "aria-label": "Send" }, "Send"));
    ui.panel.append(header, ui.list, ui.error, form);
    ui.launcher = el("button", {
      type: "button", class: "parley-launcher", "aria-label": "Open chat",
      "aria-expanded": "false", "aria-controls": "parley-panel",
    });
    ui.launcher.appendChild(icon("chat"));
    ui.root.append(ui.panel, ui.launcher);
    document.body.appendChild(ui.root);

    ui.launcher.addEventListener("click", () => setOpen(ui.panel.hidden));
    close.addEventListener("click", () => setOpen(false));
    ui.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") setOpen(false);
    });
    // A form gives Enter-to-send for free; preventDefault keeps the host page where it is.
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = ui.input.value.trim();
      if (!text || busy) return;
      ui.input.value = "";
      send(text);
    });
  }

  function setOpen(open) {
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", String(open));
    ui.launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    (open ? ui.input : ui.launcher).focus();
    if (open) scrollDown();
  }

  const scrollDown = () => { ui.list.scrollTop = ui.list.scrollHeight; };

  function showError(message) {
    ui.error.textContent = message || "";
    ui.error.hidden = !message;
  }

  function setBusy(value) {
    busy = value;
    ui.send.disabled = value;
  }

  // --- storage: localStorage can throw (privacy modes, sandboxed frames); then the widget forgets on reload.
  function loadStored() {
    try {
      const saved = JSON.parse(localStorage.getItem(storeKey) || "null");
      return saved && saved.id && saved.visitor_token ? saved : null;
    } catch (e) {
      return null;
    }
  }
  function remember(value) {
    conversation = value;
    try {
      if (value) localStorage.setItem(storeKey, JSON.stringify(value));
      else localStorage.removeItem(storeKey);
    } catch (e) { /* see loadStored */ }
  }

  // --- HTTP. Only the headers the API's CORS preflight allows: anything more and the browser refuses the call.
  function headers(extra = {}) {
    const h = { Authorization: "Bearer " + key };
    if (conversation) h["X-Visitor-Token"] = conversation.visitor_token;
    return Object.assign(h, extra);
  }

  async function call(path, options = {}) {
    try {
      return await fetch(api + path, { credentials: "omit", ...options });
    } catch (e) {
      // A network failure, or the browser refusing the response because this page's origin is not allowed (CORS).
      throw new Error("The chat service can't be reached from this page. Please try again later.");
    }
  }

  // Errors are RFC 9457 problem JSON; its detail is written for people (a 429's says when to retry).
  async function failure(response) {
    let message = `Something went wrong (${response.status}).`;
    try {
      const body = await response.json();
      message = body.detail || body.title || message;
    } catch (e) { /* not JSON: keep the generic message */ }
    return new Error(message);
  }

  async function json(response) {
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  async function createConversation() {
    const response = await call("/v1/conversations", {
      method: "POST", headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" }, body: "{}",
    });
    const body = await json(response);
    remember({ id: body.id, visitor_token: body.visitor_token });
  }

  const conversationPath = (suffix = "") => "/v1/conversations/" + encodeURIComponent(conversation.id) + suffix;

  // --- messages
  function bubble(role, text) {
    const kind = role === "user" ? "user" : role === "agent" ? "agent" : "bot";
    const node = ui.list.appendChild(el("div", { class: "parley-msg parley-msg-" + kind }));
    const body = node.appendChild(el("div", { class: "parley-text" }, text || ""));
    scrollDown();
    return { node, body };
  }

  function renderSources(node, sources) {
    const seen = new Set();
    const unique = (sources || []).filter((s) => !seen.has(s.document_id) && seen.add(s.document_id));
    if (!unique.length) return;
    const box = node.appendChild(el("div", { class: "parley-sources" }, "Sources: "));
    for (const source of unique) {
      // Only http(s) becomes a link: a javascript: URL in a knowledge-base document must never be clickable.
      const item = /^https?:\/\//i.test(source.source_url || "")
        ? el("a", { class: "parley-source", href: source.source_url, target: "_blank", rel: "noopener noreferrer" })
        : el("span", { class: "parley-source" });
      item.textContent = source.title;
      box.appendChild(item);
    }
  }

  function renderFeedback(node, messageId) {
    const actions = node.appendChild(el("div", { class: "parley-actions" }));
    const buttons = [["up", "Helpful"], ["down", "Not helpful"]].map(([rating, label]) => {
      const button = actions.appendChild(el("button", { type: "button", "aria-label": label, "aria-pressed": "false" }));
      button.appendChild(icon("thumb", rating === "down"));
      button.addEventListener("click", async () => {
        try {
          await json(await call("/v1/messages/" + encodeURIComponent(messageId) + "/feedback", {
            method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ rating }),
          }));
          buttons.forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
          showError("");
        } catch (e) {
          showError(e.message);
        }
      });
      return button;
    });
    scrollDown();
    return actions;
  }

  function offerHandoff(actions) {
    const button = actions.appendChild(el("button", { type: "button", class: "parley-handoff" }, "Talk to a person"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await json(await call(conversationPath("/handoff"), { method: "POST", headers: headers() }));
        button.remove();
        ui.list.appendChild(el("p", { class: "parley-note" }, "A person from our team will reply here."));
        scrollDown();
      } catch (e) {
        button.disabled = false;
        showError(e.message);
      }
    });
  }

  function renderAnswer(node, messageId, sources) {
    renderSources(node, sources);
    return renderFeedback(node, messageId);
  }

  // --- Server-Sent Events over fetch (EventSource can neither POST nor send headers). Network chunks may split an
  // event anywhere, so text is buffered and only complete events (ended by a blank line) are handed on.
  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue; // a comment, e.g. a keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer = (buffer + decoder.decode(value || new Uint8Array(0), { stream: !done })).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        if (done) break;
      }
      if (buffer.trim()) dispatch(buffer);
    } catch (error) {
      reader.cancel().catch(() => {}); // stop downloading an answer nobody will see
      throw error;
    }
  }

  function postMessage(text) {
    return call(conversationPath("/messages"), {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ text }),
    });
  }

  async function send(text) {
    setBusy(true);
    showError("");
    bubble("user", text);
    let bot = null;
    try {
      if (!conversation) await createConversation();
      let response = await postMessage(text);
      if (response.status === 404) {
        // The stored conversation is gone (deleted, or the server's data reset): start a new one and send again.
        await createConversation();
        response = await postMessage(text);
      }
      if (!response.ok) throw await failure(response);
      bot = bubble("assistant", "");
      let finished = false;
      await readEvents(response.body, (name, data) => {
        if (name === "token") {
          bot.body.textContent += data.text;
          scrollDown();
        } else if (name === "done") {
          finished = true;
          const reply = data.reply;
          if (reply.text) bot.body.textContent = reply.text; // the full text is authoritative
          const actions = renderAnswer(bot.node, reply.message_id, reply.sources);
          if (reply.handoff_offered) offerHandoff(actions);
        } else if (name === "error") {
          throw new Error(data.detail || data.title || "The answer failed.");
        }
      });
      if (!finished) throw new Error("The answer was cut off. Please try again.");
    } catch (error) {
      if (bot && !bot.body.textContent) bot.node.remove();
      showError(error.message);
    } finally {
      setBusy(false);
    }
  }

  // Re-render a stored conversation after a page reload; a 404 means it is gone, so the next message starts afresh.
  // Sending waits for this, so the history cannot land below a new message.
  async function restore() {
    const saved = loadStored();
    if (!saved) return;
    conversation = saved;
    setBusy(true);
    try {
      const response = await call(conversationPath(), { headers: headers() });
      if (response.status === 404) return remember(null);
      for (const message of (await json(response)).messages || []) {
        const shown = bubble(message.role, message.text);
        if (message.role === "assistant") renderAnswer(shown.node, message.id, message.sources);
      }
    } catch (error) {
      showError(error.message);
    } finally {
      setBusy(false);
    }
  }

  const start = () => { build(); restore(); };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
