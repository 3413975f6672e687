// sgbridge console: the few behaviours plain HTML forms lack. No library, nothing from a CDN.
"use strict";
document.addEventListener("click", (e) => {
  const confirmText = e.target.closest("[data-confirm]")?.dataset.confirm;
  if (confirmText && !window.confirm(confirmText)) e.preventDefault();
});
document.addEventListener("change", (e) => {
  const name = e.target.dataset?.selectAll;
  if (!name) return;
  for (const box of e.target.form.querySelectorAll(`input[type=checkbox][name="${name}"]`)) box.checked = e.target.checked;
});
// Live tail: server-sent events from /ui/tail/stream, newest row first, at most 500 rows.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("tail-filter");
  if (!form) return;
  const body = document.querySelector("#tail tbody");
  const status = document.getElementById("tail-status");
  let source = null;
  let seen = new Set();
  const cell = (row, text, href) => {
    const td = row.insertCell();
    if (href) { const a = document.createElement("a"); a.href = href; a.textContent = text; td.append(a); }
    else td.textContent = text ?? "";
  };
  const connect = () => {
    if (source) source.close();
    body.replaceChildren();
    seen = new Set();
    const params = new URLSearchParams(new FormData(form));
    source = new EventSource(`${form.dataset.stream}?${params}`);
    source.onopen = () => { status.textContent = "live"; };
    source.onerror = () => { status.textContent = "reconnecting…"; };
    source.addEventListener("ended", () => { source.close(); status.textContent = "session ended: log in again"; });
    source.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (seen.has(e.seq)) return;  // after a reconnect the server resumes from Last-Event-ID
      seen.add(e.seq);
      const row = body.insertRow(0);
      row.dataset.seq = e.seq;
      cell(row, String(e.seq), form.dataset.events + e.seq);
      for (const v of [e.at, e.source, e.event, e.id, e.email, e.user_id]) cell(row, v);
      while (body.rows.length > 500) body.deleteRow(-1);
    };
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); connect(); });
  connect();
});
