/*
 * Kefu chat widget: one tag on any page —
 *   <script src="https://kefu.example.com/static/chat/widget.js" data-key="PUBLIC_KEY" async></script>
 * A floating button and a panel inside a Shadow DOM (the host page's styles cannot reach it),
 * streamed answers over SSE, sources, thumbs, "talk to a person", history across page loads
 * (the conversation id is kept in localStorage). No framework. Answer text is never parsed as
 * HTML: the small Markdown subset below builds DOM nodes and sets textContent only.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var KEY = script.getAttribute("data-key") || script.getAttribute("data-kb") || "";
  var BASE = new URL(script.src, location.href).origin;
  var CSS_URL = new URL("widget.css", script.src).href;
  var API = BASE + "/api/v1/chat";
  var STORE = "kefu:" + KEY + ":conversation";
  var VISITOR = "kefu:visitor";

  var STRINGS = {
    en: {open: "Chat with us", close: "Close chat", title: "Customer service", placeholder: "Type your question…",
         send: "Send", human: "Talk to a person", sources: "Sources", up: "Helpful", down: "Not helpful",
         thanks: "Thanks for your feedback", typing: "Answering…", failed: "Sorry, something went wrong. Please try again.",
         limited: "You are sending messages too quickly. Please wait {s} seconds.", refused: "This page may not use this chat.",
         welcome: "Hello! Ask me anything about our services.", related: "Related questions I can answer:"},
    zh: {open: "在线咨询", close: "关闭", title: "在线客服", placeholder: "请输入您的问题…", send: "发送", human: "转人工",
         sources: "来源", up: "有帮助", down: "没帮助", thanks: "感谢您的反馈", typing: "正在回答…",
         failed: "抱歉，出现了问题，请重试。", limited: "发送太频繁，请 {s} 秒后再试。", refused: "此页面无权使用该客服。",
         welcome: "您好！有什么可以帮您？", related: "相关问题，我可以回答："}
  };
  // The widget's language: the tag's data-lang, else the page's lang, else the browser's; Chinese or English.
  function widgetLanguage() {
    var named = script.getAttribute("data-lang") || document.documentElement.lang || navigator.language || "en";
    return named.toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  }
  var lang = widgetLanguage();
  var T = STRINGS[lang];
  // Sent with every API call, so the server's own notices (errors, limits) come back in the widget's language.
  var ACCEPT_LANGUAGE = lang === "zh" ? "zh-CN,zh;q=0.9" : "en";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // Icons are drawn, not typed: a customer's machine may have no emoji font (a missing glyph is a box).
  var ICONS = {  // 24×24 stroke paths (Feather icons, MIT)
    chat: "M21 11.5a8.38 8.38 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.38 8.38 0 0 1-3.8-.9L3 21l1.9-5.7a8.38 8.38 0 " +
          "0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.38 8.38 0 0 1 3.8-.9h.5a8.48 8.48 0 0 1 8 8v.5z",
    up: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 " +
        "0 0 1 2-2h3",
    down: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 " +
          "22 4v7a2.31 2.31 0 0 1-2.33 2H17"
  };

  function icon(name) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    [["viewBox", "0 0 24 24"], ["width", "1.2em"], ["height", "1.2em"], ["fill", "none"], ["stroke", "currentColor"],
     ["stroke-width", "2"], ["stroke-linecap", "round"], ["stroke-linejoin", "round"], ["aria-hidden", "true"],
     ["focusable", "false"]].forEach(function (pair) { svg.setAttribute(pair[0], pair[1]); });
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  function storage(name, value) {
    try {
      if (value === undefined) { return localStorage.getItem(name); }
      if (value === null) { localStorage.removeItem(name); } else { localStorage.setItem(name, value); }
    } catch (e) { /* storage disabled: the conversation lasts for this page only */ }
    return null;
  }

  function visitorId() {
    var id = storage(VISITOR);
    if (!id) {
      id = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
      storage(VISITOR, id);
    }
    return id;
  }

  // --- safe Markdown: paragraphs, lists, **bold**, `code`, [n] marks — DOM nodes only ---------
  function inline(parent, text) {
    var pattern = /(\*\*[^*]+\*\*|`[^`]+`|\[\d+(?:\s*,\s*\d+)*\])/g;
    var last = 0, match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) { parent.appendChild(document.createTextNode(text.slice(last, match.index))); }
      var token = match[0];
      if (token.indexOf("**") === 0) { parent.appendChild(el("strong", {}, token.slice(2, -2))); }
      else if (token.charAt(0) === "`") { parent.appendChild(el("code", {}, token.slice(1, -1))); }
      else { parent.appendChild(el("sup", {"class": "mark"}, token)); }
      last = match.index + token.length;
    }
    if (last < text.length) { parent.appendChild(document.createTextNode(text.slice(last))); }
  }

  function renderMarkdown(container, text) {
    container.textContent = "";
    var list = null;
    text.split(/\n/).forEach(function (line) {
      var item = /^\s*(?:[-*•]|\d+[.)])\s+(.*)$/.exec(line);
      if (item) {
        if (!list) { list = el(/^\s*\d/.test(line) ? "ol" : "ul"); container.appendChild(list); }
        var li = el("li"); inline(li, item[1]); list.appendChild(li);
        return;
      }
      list = null;
      if (line.trim()) { var p = el("p"); inline(p, line); container.appendChild(p); }
    });
  }

  // --- the panel ---------------------------------------------------------------------------
  var host = el("div", {"id": "kefu-widget"});
  var root = host.attachShadow ? host.attachShadow({mode: "open"}) : host;
  root.appendChild(el("link", {"rel": "stylesheet", "href": CSS_URL}));
  var launcher = el("button", {"class": "launcher", "type": "button", "aria-expanded": "false",
                               "aria-controls": "kefu-panel", "aria-label": T.open});
  launcher.appendChild(icon("chat"));
  var panel = el("section", {"class": "panel", "id": "kefu-panel", "role": "dialog", "aria-label": T.title,
                             "hidden": ""});
  var header = el("header");
  header.appendChild(el("h2", {}, T.title));
  var humanButton = el("button", {"class": "human", "type": "button"}, T.human);
  var closeButton = el("button", {"class": "close", "type": "button", "aria-label": T.close}, "×");
  header.appendChild(humanButton);
  header.appendChild(closeButton);
  var log = el("ol", {"class": "log", "aria-live": "polite"});
  var form = el("form", {"class": "ask"});
  var input = el("textarea", {"rows": "1", "maxlength": "2000", "placeholder": T.placeholder, "aria-label": T.placeholder});
  var sendButton = el("button", {"type": "submit"}, T.send);
  form.appendChild(input);
  form.appendChild(sendButton);
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(form);
  root.appendChild(launcher);
  root.appendChild(panel);

  function setOpen(open) {
    if (open) { panel.removeAttribute("hidden"); } else { panel.setAttribute("hidden", ""); }
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) { input.focus(); } else { launcher.focus(); }
  }
  launcher.addEventListener("click", function () { setOpen(panel.hasAttribute("hidden")); });
  closeButton.addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (event) { if (event.key === "Escape") { setOpen(false); } });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit ? form.requestSubmit() : submit(); }
  });

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function bubble(role, text) {
    var item = el("li", {"class": "msg " + role});
    var body = el("div", {"class": "body"});
    if (role === "assistant") { renderMarkdown(body, text || ""); } else { body.textContent = text || ""; }
    item.appendChild(body);
    log.appendChild(item);
    scrollDown();
    return item;
  }

  function notice(text) { var item = bubble("notice", text); item.setAttribute("role", "status"); return item; }

  function showSources(item, citations) {
    if (!citations || !citations.length) { return; }
    var details = el("details", {"class": "sources"});
    details.appendChild(el("summary", {}, T.sources + " (" + citations.length + ")"));
    var list = el("ol");
    citations.forEach(function (c) {
      var li = el("li", {"value": String(c.n)});
      var where = c.document_title + (c.page ? " · p. " + c.page : "") + (c.section ? " · " + c.section : "");
      li.appendChild(el("span", {"class": "where"}, where));
      li.appendChild(el("q", {}, c.snippet || ""));
      list.appendChild(li);
    });
    details.appendChild(list);
    item.appendChild(details);
  }

  function showThumbs(item, messageId, current) {
    var bar = el("div", {"class": "thumbs", "role": "group", "aria-label": T.up + " / " + T.down});
    ["up", "down"].forEach(function (rating) {
      var button = el("button", {"type": "button", "class": rating, "aria-label": T[rating],
                                 "aria-pressed": current === rating ? "true" : "false"});
      button.appendChild(icon(rating));
      button.addEventListener("click", function () {
        call("POST", "/messages/" + messageId + "/feedback", {rating: rating}).then(function (response) {
          if (!response.ok) { return; }
          Array.prototype.forEach.call(bar.querySelectorAll("button"), function (b) {
            b.setAttribute("aria-pressed", b === button ? "true" : "false");
          });
          var thanks = bar.querySelector(".thanks") || bar.appendChild(el("span", {"class": "thanks"}));
          thanks.textContent = T.thanks;
        });
      });
      bar.appendChild(button);
    });
    item.appendChild(bar);
  }

  // With an "I don't know": the base's closest FAQ questions, each a button that asks it.
  function showRelated(item, questions, offeredBy) {
    if (!questions || !questions.length) { return; }
    var box = el("div", {"class": "related"});
    box.appendChild(el("span", {"class": "label"}, T.related));
    questions.forEach(function (question) {
      var button = el("button", {"type": "button"}, question);
      button.addEventListener("click", function () {
        if (sendButton.disabled) { return; }
        input.value = question;
        submit(offeredBy);
      });
      box.appendChild(button);
    });
    item.appendChild(box);
  }

  function finishAnswer(item, data) {
    renderMarkdown(item.querySelector(".body"), data.answer || "");
    item.classList.remove("streaming");
    item.setAttribute("data-outcome", data.outcome || "");
    showSources(item, data.citations);
    showRelated(item, data.suggestions, data.message_id);
    if (["answered", "cached", "direct"].indexOf(data.outcome) >= 0) { showThumbs(item, data.message_id, null); }
    scrollDown();
  }

  // --- a handed-off conversation: staff replies arrive live on the conversation's stream ----
  var live = null;
  function listen(conversation, afterId) {
    if (live || !conversation) { return; }
    var url = API + "/conversations/" + encodeURIComponent(conversation) + "/events";
    live = new EventSource(afterId ? url + "?after=" + encodeURIComponent(afterId) : url);
    live.addEventListener("message", function (event) {
      var m = JSON.parse(event.data);
      var item = bubble("assistant", "");
      item.classList.add("staff");
      finishAnswer(item, {answer: m.text, citations: m.citations, outcome: m.outcome, message_id: m.id});
    });
    live.addEventListener("status", function (event) {
      if (JSON.parse(event.data).status === "closed") { live.close(); live = null; storage(STORE, null); }
    });
  }

  function follow(streamUrl, item) {
    var body = item.querySelector(".body");
    var streamed = "";
    item.classList.add("streaming");
    body.textContent = T.typing;
    var source = new EventSource(streamUrl);
    source.addEventListener("token", function (event) {
      var text = JSON.parse(event.data).text;
      if (!text) { return; }  // a token the server holds back (output gate, masker): keep "typing"
      if (!streamed) { body.textContent = ""; }
      streamed += text;
      body.textContent = streamed;  // plain text while streaming; Markdown once complete
      scrollDown();
    });
    source.addEventListener("done", function (event) {
      var data = JSON.parse(event.data);
      source.close();
      finishAnswer(item, data);
      busy(false);
      if (data.outcome === "handed_off") { listen(storage(STORE), data.message_id); }
    });
    source.addEventListener("error", function (event) {
      if (event.data) {  // an error event from the server, not a dropped connection
        source.close();
        item.classList.remove("streaming");
        var failure = JSON.parse(event.data);
        // Kefu's own failure reply is in the customer's language; a bare service error is not: ours instead.
        body.textContent = (failure.code === "service_unavailable" || failure.code === "timeout") ? T.failed
          : failure.message || T.failed;
        busy(false);
      } else if (source.readyState === EventSource.CLOSED) {
        item.classList.remove("streaming");
        busy(false);
      }
      // otherwise EventSource reconnects by itself and resumes with Last-Event-ID
    });
  }

  function call(method, path, body) {
    var options = {method: method, headers: {"X-Kefu-Key": KEY, "Accept-Language": ACCEPT_LANGUAGE}, mode: "cors",
                   credentials: "omit"};
    if (body !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    return fetch(API + path, options);
  }

  function busy(on) { sendButton.disabled = on; humanButton.disabled = on; }

  function started(response, item) {
    return response.json().then(function (data) {
      if (response.status === 202) {
        storage(STORE, data.conversation_id);
        if (data.done) {  // final at once (cached, direct, refused…): no stream to read
          finishAnswer(item, data.done);
          busy(false);
          if (data.done.outcome === "handed_off") { listen(data.conversation_id, data.message_id); }
          return;
        }
        follow(data.stream_url, item);
        return;
      }
      busy(false);
      var code = data.error && data.error.code;
      var text = code === "rate_limited" ? T.limited.replace("{s}", response.headers.get("Retry-After") || "60")
        : (code === "origin_not_allowed" || code === "unknown_key") ? T.refused
        : code === "service_unavailable" ? T.failed
        : (data.error && data.error.message) || T.failed;
      item.querySelector(".body").textContent = text;
      item.className = "msg notice";
      if (code === "conversation_not_found" || code === "conversation_closed") { storage(STORE, null); }
    });
  }

  // offeredBy: the reply whose suggested question the customer took (staff see it with the refused question).
  function submit(offeredBy) {
    var text = input.value.trim();
    if (!text || sendButton.disabled) { return; }
    input.value = "";
    busy(true);
    bubble("user", text);
    var item = bubble("assistant", "");
    var payload = {text: text, visitor_id: visitorId()};
    var conversation = storage(STORE);
    if (conversation) { payload.conversation_id = conversation; }
    if (conversation && typeof offeredBy === "string") { payload.offered_by = offeredBy; }
    call("POST", "/messages", payload).then(function (response) { return started(response, item); })
      .catch(function () { busy(false); item.querySelector(".body").textContent = T.failed; item.className = "msg notice"; });
  }
  form.addEventListener("submit", function (event) { event.preventDefault(); submit(); });

  humanButton.addEventListener("click", function () {
    var conversation = storage(STORE);
    if (!conversation) { setOpen(true); input.value = T.human; submit(); return; }
    busy(true);
    var item = bubble("assistant", "");
    call("POST", "/conversations/" + conversation + "/handoff", {}).then(function (response) { return started(response, item); })
      .catch(function () { busy(false); });
  });

  function restore() {
    var conversation = storage(STORE);
    if (!conversation) { notice(T.welcome); return; }
    call("GET", "/conversations/" + conversation).then(function (response) {
      if (!response.ok) { storage(STORE, null); notice(T.welcome); return null; }
      return response.json();
    }).then(function (data) {
      if (!data) { return; }
      var lastId = null;
      data.messages.forEach(function (m) {
        lastId = m.id;
        var item = bubble(m.role, m.role === "user" ? m.text : "");
        if (m.role !== "assistant") { return; }
        if (m.outcome === "pending") { busy(true); follow(m.stream_url, item); return; }
        finishAnswer(item, {answer: m.text, citations: m.citations, suggestions: m.suggestions, outcome: m.outcome,
                            message_id: m.id});
        if (m.feedback) {
          var pressed = item.querySelector(".thumbs ." + m.feedback);
          if (pressed) { pressed.setAttribute("aria-pressed", "true"); }
        }
      });
      if (data.status === "handed_off") { listen(conversation, lastId); }
    }).catch(function () { notice(T.welcome); });
  }

  function mount() { document.body.appendChild(host); restore(); }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
