// Shared by the labeling and review pages: the JSON API, sending the
// session's CSRF token with every request once signed in, and the status line.
"use strict";

const $ = (id) => document.getElementById(id);
const session = { csrf: null };

// The page's status line (both pages have one).
function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(method, path, body) {
  const headers = {};
  if (session.csrf) headers["x-goodhart-csrf"] = session.csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await res.json(); } catch (_) { /* empty body */ }
  if (!res.ok) {
    const err = new Error(data.error || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}
