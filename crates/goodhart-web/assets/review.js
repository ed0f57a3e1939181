// The review page: for each queued review, keep the goal under review or choose another.
"use strict";


let review = null;   // the review on screen
let shownAt = 0;     // when it was shown, for seconds per review
let busy = false;    // a request is in flight: ignore keys until it answers

function show(id) {
  for (const m of ["signin", "reviewing", "done"]) $(m).hidden = m !== id;
}

function rolloutView(o) {
  const div = document.createElement("div");
  div.className = "rollout";
  if (o.svg) {
    div.innerHTML = o.svg;  // our own server's SVG, never user text
  } else {
    const pre = document.createElement("pre");
    pre.textContent = `${o.prompt}${o.text}`;
    div.append(pre);
  }
  return div;
}

function render(next) {
  const p = next.progress;
  $("progress").textContent = `${p.reviewed} / ${p.queued} reviewed`;
  review = next.review;
  if (!review) { delete document.body.dataset.review; show("done"); return; }
  show("reviewing");
  const list = $("candidates");
  list.replaceChildren();
  for (const c of review.candidates) {
    const el = $("candidate").content.firstElementChild.cloneNode(true);
    const key = c.position + 1;
    el.dataset.position = c.position;
    el.querySelector(".title").textContent = c.position === 0 ? "Goal under review:" : `Alternative ${c.position}:`;
    el.querySelector(".goal").textContent = c.goal;
    el.querySelector(".rollouts").append(...c.rollouts.map(rolloutView));
    const b = el.querySelector(".choose");
    b.textContent = c.position === 0 ? "Keep this goal" : "Choose this goal";
    const k = document.createElement("kbd");
    k.textContent = String(key);
    b.append(k);
    b.addEventListener("click", () => choose(c.position));
    list.append(el);
  }
  $("reason").value = "";
  shownAt = performance.now();
  document.body.dataset.review = review.id;
}

async function loadNext() {
  render(await api("GET", "/api/review/next"));
}

async function choose(position) {
  if (!review || busy) return;
  busy = true;
  const item = review.id;
  const goal = review.candidates.find((c) => c.position === position).goal;
  try {
    const reason = $("reason").value.trim();
    await api("POST", "/api/review", {
      item, chosen: position,
      reason: reason === "" ? null : reason,
      seconds: Math.round((performance.now() - shownAt) / 100) / 10,
    });
    await loadNext();
    status(`Saved review ${item}: ${position === 0 ? "kept" : "chose"} ${goal}.`);
  } catch (e) {
    status(`Not saved: ${e.message}`, true);
    if (e.status === 401) start();
  } finally {
    busy = false;
  }
}

document.addEventListener("keydown", (ev) => {
  const typing = ev.target instanceof HTMLTextAreaElement || ev.target instanceof HTMLInputElement;
  if (typing) {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey || !review || $("reviewing").hidden) return;
  const n = Number(ev.key);
  if (Number.isInteger(n) && n >= 1 && n <= review.candidates.length) {
    ev.preventDefault();
    choose(n - 1);
  }
});

$("again").addEventListener("click", () => loadNext());

async function start() {
  try {
    const me = await api("GET", "/api/me");
    session.csrf = me.csrf;
    $("who").textContent = me.user;
    await loadNext();
  } catch (e) {
    if (e.status !== 401) { $("signin-error").textContent = e.message; }
    $("who").textContent = "";
    $("progress").textContent = "";
    show("signin");
  }
}

start();
