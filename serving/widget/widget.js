/*
 * Parley chat widget. Embed with:
 *   <script src="https://parley.example/widget.js" data-key="pk_..." defer></script>
 * Optional data-api="https://parley.example" (defaults to the origin this script came from).
 *
 * Self-contained on purpose: it runs inside someone else's page, so it loads nothing but the Parley API, prefixes
 * every class with "parley-", and writes server or visitor text only through textContent (never innerHTML).
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.__parleyWidget) return; // loaded twice on one page: keep the first
  window.__parleyWidget = true;

  var key = script.getAttribute("data-key") || "";
  var api = (script.getAttribute("data-api") || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  // One conversation per widget key, so two Parley tenants on one site do not share a conversation.
  var storeKey = "parley:" + key;
  var conversation = null; // {id, visitor_token}
  var busy = false;

  var CSS = [
    ".parley-root{all:initial;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328}",
    ".parley-root *{box-sizing:border-box;font:inherit;color:inherit}",
    ".parley-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;",
    "border:0;border-radius:50%;background:#2456e8;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);",
    "padding:15px}",
    ".parley-launcher:focus-visible,.parley-panel button:focus-visible{outline:3px solid #9db6ff;outline-offset:2px}",
    ".parley-panel{position:fixed;right:20px;bottom:88px;z-index:2147483000;display:flex;flex-direction:column;",
    "width:min(370px,calc(100vw - 40px));height:min(540px,calc(100vh - 110px));background:#fff;border-radius:12px;",
    "box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}",
    ".parley-panel[hidden]{display:none}",
    ".parley-header{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;",
    "background:#2456e8;color:#fff;font-weight:600}",
    ".parley-close{border:0;background:none;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 6px}",
    ".parley-messages{flex:1;overflow-y:auto;padding:12px;background:#f6f7f9}",
    ".parley-msg{margin:0 0 10px;max-width:88%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;",
    "overflow-wrap:anywhere}",
    ".parley-msg-user{margin-left:auto;background:#2456e8;color:#fff}",
    ".parley-msg-bot,.parley-msg-agent{background:#fff;border:1px solid #e1e4e8}",
    ".parley-msg-agent{border-color:#f0c36d}",
    ".parley-sources{margin-top:6px;font-size:12px;color:#57606a;white-space:normal}",
    ".parley-sources a{color:#2456e8;text-decoration:underline}",
    ".parley-source{display:block}",
    ".parley-actions{margin-top:6px;display:flex;gap:6px;flex-wrap:wrap;white-space:normal}",
    ".parley-actions button{border:1px solid #d0d7de;background:#fff;border-radius:6px;padding:3px 8px;cursor:pointer;",
    "color:#57606a}",
    ".parley-root svg{display:block;width:100%;height:100%}",
    ".parley-actions svg{width:16px;height:16px}",
    ".parley-actions button[aria-pressed=true]{background:#dbe5ff;border-color:#2456e8}",
    ".parley-note{font-size:12px;color:#57606a;margin:0 0 10px}",
    ".parley-error{padding:6px 12px;font-size:12px;color:#a40e26;background:#ffebe9}",
    ".parley-error[hidden]{display:none}",
    ".parley-form{display:flex;gap:6px;padding:10px;border-top:1px solid #e1e4e8;background:#fff}",
    ".parley-input{flex:1;min-width:0;padding:8px 10px;border:1px solid #d0d7de;border-radius:8px;background:#fff}",
    ".parley-send{border:0;border-radius:8px;padding:0 14px;background:#2456e8;color:#fff;cursor:pointer}",
    ".parley-send:disabled{opacity:.5;cursor:default}",
  ].join("");

  // A tiny element builder: attributes set with setAttribute, text with textContent, nothing parsed as HTML.
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text != null) node.textContent = text;
    return node;
  }

  // Inline SVG icons (paths from Google's Material Icons, Apache-2.0) rather than emoji, which many systems lack a
  // font for. Built with createElementNS, so still no HTML parsing.
  var ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z",
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 " +
      "7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
  };
  function icon(name, flip) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    if (flip) svg.setAttribute("transform", "rotate(180)");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }

  var root, launcher, panel, list, errorLine, form, input, sendButton;

  function build() {
    var style = el("style", {}, CSS);
    root = el("div", { class: "parley-root" });
    launcher = el("button", {
      type: "button", class: "parley-launcher", "aria-label": "Open chat",
      "aria-expanded": "false", "aria-controls": "parley-panel",
    });
    launcher.appendChild(icon("chat"));
    panel = el("div", {
      id: "parley-panel", class: "parley-panel", role: "dialog", "aria-labelledby": "parley-title", hidden: "",
    });
    var header = el("div", { class: "parley-header" });
    header.appendChild(el("span", { id: "parley-title" }, "Chat with us"));
    var close = el("button", { type: "button", class: "parley-close", "aria-label": "Close chat" }, "\u00D7");
    header.appendChild(close);
    list = el("div", { class: "parley-messages", role: "log", "aria-live": "polite" });
    errorLine = el("div", { class: "parley-error", role: "alert", hidden: "" });
    form = el("form", { class: "parley-form" });
    input = el("input", {
      type: "text", class: "parley-input", "aria-label": "Your message", placeholder: "Ask a question\u2026",
      autocomplete: "off", maxlength: "4000",
    });
    sendButton = el("button", { type: "submit", class: "parley-send", "aria-label": "Send" }, "Send");
    form.appendChild(input);
    form.appendChild(sendButton);
    [header, list, errorLine, form].forEach(function (part) { panel.appendChild(part); });
    root.appendChild(style);
    root.appendChild(panel);
    root.appendChild(launcher);
    document.body.appendChild(root);

    launcher.addEventListener("click", function () { setOpen(panel.hidden); });
    close.addEventListener("click", function () { setOpen(false); });
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") setOpen(false);
    });
    // A form gives Enter-to-send for free; preventDefault keeps the host page where it is.
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = input.value.trim();
      if (!text || busy) return;
      input.value = "";
      send(text);
    });
  }

  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    (open ? input : launcher).focus();
    if (open) scrollDown();
  }

  function scrollDown() { list.scrollTop = list.scrollHeight; }

  function showError(message) {
    errorLine.textContent = message || "";
    errorLine.hidden = !message;
  }

  // --- storage: localStorage can throw (privacy modes, sandboxed frames); the widget then just forgets on reload.
  function loadStored() {
    try {
      var saved = JSON.parse(localStorage.getItem(storeKey) || "null");
      return saved && saved.id && saved.visitor_token ? saved : null;
    } catch (e) { return null; }
  }
  function store(value) {
    try {
      if (value) localStorage.setItem(storeKey, JSON.stringify(value));
      else localStorage.removeItem(storeKey);
    } catch (e) { /* see loadStored */ }
  }

  // --- HTTP: only the headers the API's CORS preflight allows.
  function headers(extra) {
    var h = { Authorization: "Bearer " + key };
    if (conversation) h["X-Visitor-Token"] = conversation.visitor_token;
    return Object.assign(h, extra || {});
  }

  function call(path, options) {
    return fetch(api + path, Object.assign({ credentials: "omit" }, options)).catch(function () {
      // A network failure, or the browser refusing the answer because this origin is not allowed (CORS).
      throw new Error("The chat service can't be reached from this page. Please try again later.");
    });
  }

  // Errors are RFC 9457 problem JSON; its detail is written for the visitor (a 429 says when to retry).
  function problem(response) {
    return response.json().then(
      function (body) { return body.detail || body.title || "Something went wrong (" + response.status + ")."; },
      function () { return "Something went wrong (" + response.status + ")."; }
    ).then(function (message) {
      var error = new Error(message);
      error.status = response.status;
      throw error;
    });
  }

  function json(response) { return response.ok ? response.json() : problem(response); }

  function createConversation() {
    return call("/v1/conversations", {
      method: "POST", headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" }, body: "{}",
    }).then(json).then(function (body) {
      conversation = { id: body.id, visitor_token: body.visitor_token };
      store(conversation);
      return conversation;
    });
  }

  // --- rendering
  function bubble(role, text) {
    var kind = role === "user" ? "user" : role === "agent" ? "agent" : "bot";
    var node = el("div", { class: "parley-msg parley-msg-" + kind });
    var body = el("div", { class: "parley-text" }, text || "");
    node.appendChild(body);
    list.appendChild(node);
    scrollDown();
    return { node: node, body: body };
  }

  function renderSources(node, sources) {
    var seen = {};
    var unique = (sources || []).filter(function (s) {
      var id = s.document_id + "|" + s.title;
      return seen[id] ? false : (seen[id] = true);
    });
    if (!unique.length) return;
    var box = el("div", { class: "parley-sources" }, "Sources: ");
    unique.forEach(function (source) {
      // Only http(s) links: a javascript: URL in a knowledge-base document must not become clickable.
      var link = /^https?:\/\//i.test(source.source_url || "");
      var item = link
        ? el("a", { class: "parley-source", href: source.source_url, target: "_blank", rel: "noopener noreferrer" })
        : el("span", { class: "parley-source" });
      item.textContent = source.title;
      box.appendChild(item);
    });
    node.appendChild(box);
  }

  function renderFeedback(node, messageId) {
    var actions = el("div", { class: "parley-actions" });
    var buttons = [["up", "Helpful"], ["down", "Not helpful"]].map(function (spec) {
      var button = el("button", { type: "button", "aria-label": spec[1], "aria-pressed": "false" });
      button.appendChild(icon("up", spec[0] === "down"));
      button.addEventListener("click", function () {
        call("/v1/messages/" + encodeURIComponent(messageId) + "/feedback", {
          method: "POST", headers: headers({ "Content-Type": "application/json" }),
          body: JSON.stringify({ rating: spec[0] }),
        }).then(json).then(function () {
          buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
          showError("");
        }).catch(function (e) { showError(e.message); });
      });
      actions.appendChild(button);
      return button;
    });
    node.appendChild(actions);
    return actions;
  }

  function handoffNote() {
    list.appendChild(el("p", { class: "parley-note" }, "A person from our team will reply here."));
    scrollDown();
  }

  function renderHandoffOffer(actions) {
    var button = el("button", { type: "button", class: "parley-handoff" }, "Talk to a person");
    button.addEventListener("click", function () {
      button.disabled = true;
      call("/v1/conversations/" + encodeURIComponent(conversation.id) + "/handoff", {
        method: "POST", headers: headers(),
      }).then(json).then(function () {
        button.remove();
        handoffNote();
      }).catch(function (e) { button.disabled = false; showError(e.message); });
    });
    actions.appendChild(button);
  }

  function renderAnswer(node, messageId, sources) {
    renderSources(node, sources);
    var actions = renderFeedback(node, messageId);
    scrollDown();
    return actions;
  }

  // --- Server-Sent Events over fetch (EventSource cannot POST or send headers). Network chunks may split an event
  // anywhere, so text is buffered and only complete events (ended by a blank line) are dispatched.
  function readEvents(body, onEvent) {
    var reader = body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function dispatch(block) {
      var name = "message", data = [];
      block.split("\n").forEach(function (line) {
        if (!line || line.charAt(0) === ":") return; // comments keep the connection alive
        var colon = line.indexOf(":");
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      });
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
    function pump() {
      return reader.read().then(function (chunk) {
        buffer += decoder.decode(chunk.value || new Uint8Array(0), { stream: !chunk.done });
        buffer = buffer.replace(/\r\n/g, "\n");
        var end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        if (chunk.done) {
          if (buffer.trim()) dispatch(buffer);
          return;
        }
        return pump();
      });
    }
    return pump();
  }

  function postMessage(text) {
    return call("/v1/conversations/" + encodeURIComponent(conversation.id) + "/messages", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ text: text }),
    });
  }

  function send(text) {
    setBusy(true);
    showError("");
    bubble("user", text);
    var bot = null, finished = false;
    (conversation ? Promise.resolve() : createConversation())
      .then(function () { return postMessage(text); })
      .then(function (response) {
        if (response.status !== 404 || !conversation) return response;
        // The stored conversation is gone (deleted, or the data reset): start a new one and send again.
        store((conversation = null));
        return createConversation().then(function () { return postMessage(text); });
      })
      .then(function (response) {
        if (!response.ok) return problem(response);
        bot = bubble("assistant", "");
        return readEvents(response.body, function (name, data) {
          if (name === "token") {
            bot.body.textContent += data.text;
            scrollDown();
          } else if (name === "done") {
            finished = true;
            var reply = data.reply;
            if (reply.text) bot.body.textContent = reply.text; // the full text is authoritative
            var actions = renderAnswer(bot.node, reply.message_id, reply.sources);
            if (reply.handoff_offered) renderHandoffOffer(actions);
          } else if (name === "error") {
            finished = true;
            throw new Error(data.detail || data.title || "The answer failed.");
          }
        }).then(function () {
          if (!finished) throw new Error("The answer was cut off. Please try again.");
        });
      })
      .catch(function (error) {
        if (bot && !bot.body.textContent) bot.node.remove();
        showError(error.message);
      })
      .then(function () { setBusy(false); });
  }

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value;
  }

  // Re-render a stored conversation after a page reload; a 404 means it is gone, so start fresh. Sending waits for
  // it, so the history cannot land below a new message.
  function restore() {
    conversation = loadStored();
    if (!conversation) return;
    setBusy(true);
    call("/v1/conversations/" + encodeURIComponent(conversation.id), { headers: headers() })
      .then(function (response) {
        if (response.status === 404) {
          store((conversation = null));
          return;
        }
        return json(response).then(function (body) {
          (body.messages || []).forEach(function (message) {
            var shown = bubble(message.role, message.text);
            if (message.role === "assistant") renderAnswer(shown.node, message.id, message.sources);
          });
        });
      })
      .catch(function (error) { showError(error.message); })
      .then(function () { setBusy(false); });
  }

  function start() {
    build();
    restore();
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
