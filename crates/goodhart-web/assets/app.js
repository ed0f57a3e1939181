// The labeling page: sign in, then label queued pairs with buttons or keys.
"use strict";

const KEYS = {
  "1": "a", ArrowLeft: "a",
  "2": "b", ArrowRight: "b",
  "3": "tie", ArrowDown: "tie",
  "4": "cant_tell", ArrowUp: "cant_tell",
};
const NAMES = { a: "A is better", b: "B is better", tie: "Tie", cant_tell: "Can't tell" };

let pair = null;     // the pair on screen
let shownAt = 0;     // when it was shown, for seconds per label
let busy = false;    // a request is in flight: ignore keys until it answers
let players = [];    // step-playing timers

function show(id) {
  for (const m of ["signin", "labeling", "done"]) $(m).hidden = m !== id;
}

function showProgress(p) {
  if (!p) return;
  const rate = p.per_minute == null ? "" : ` · ${p.per_minute.toFixed(1)} per minute`;
  $("progress").textContent = `${p.labelled} / ${p.queued} labelled${rate}`;
}

// The text of a side with the steps an assistant pointed at marked
// (`pointers` of that side; offsets in the string's own units).
function markText(el, text, pointers) {
  el.textContent = "";
  let at = 0;
  for (const p of [...pointers].sort((x, y) => x.from - y.from)) {
    if (p.from < at) continue;  // a step pointed at again in a later turn
    el.append(text.slice(at, p.from));
    const mark = document.createElement("mark");
    mark.className = "pointed";
    mark.dataset.step = p.step;
    mark.title = `step ${p.step}, pointed at in turn ${p.turn + 1}`;
    mark.textContent = text.slice(p.from, p.to);
    el.append(mark);
    at = p.to;
  }
  el.append(text.slice(at));
}

// What the assistant says: a critic's step per side, or a debate turn by turn.
function renderAssist(assist, a, b) {
  const box = $("assist");
  box.hidden = !assist;
  delete document.body.dataset.assistant;
  if (!assist) return;
  document.body.dataset.assistant = assist.assistant;
  $("assist-name").textContent = assist.turns == null
    ? `(one pointer per answer · ${assist.assistant})`
    : `(debate, ${assist.turns} turns · ${assist.assistant})`;
  const list = $("assist-turns");
  list.textContent = "";
  const quote = (p) => (p.side === "a" ? a : b).text.slice(p.from, p.to);
  const other = { a: "B", b: "A" };
  const turns = new Map();
  for (const p of assist.pointers) {
    if (!turns.has(p.turn)) turns.set(p.turn, []);
    turns.get(p.turn).push(p);
  }
  for (const [turn, ps] of turns) {
    const li = document.createElement("li");
    ps.forEach((p, i) => {
      if (i > 0) li.append(" ");
      const step = `${p.side.toUpperCase()}'s step ${p.step}`;
      li.append(assist.turns == null
        ? `Check ${step}: ` : `${other[p.side]}'s debater says ${step} is wrong: `);
      const q = document.createElement("q");
      q.textContent = quote(p);
      li.append(q, ".");
    });
    li.dataset.turn = turn;
    list.append(li);
  }
}

// A side: the text, and the task's picture with a step slider when it has frames.
function renderSide(el, side, pointers) {
  const text = el.querySelector(".text");
  markText(text, side.text, pointers);
  // Where the task has a picture, it is all the labeler sees (gridworld: the camera, not the moves).
  text.hidden = Boolean(side.svg);
  const view = el.querySelector(".view");
  const steps = el.querySelector(".steps");
  view.innerHTML = side.svg || "";  // our own server's SVG, never user text
  const frames = [...view.querySelectorAll("g.frame")];
  steps.hidden = frames.length < 2;
  if (frames.length < 2) return;
  const slider = steps.querySelector(".step");
  slider.max = frames.length - 1;
  slider.value = frames.length - 1;
  const seek = (i) => frames.forEach((f, j) => { f.style.display = j === i ? "" : "none"; });
  slider.oninput = () => seek(Number(slider.value));
  steps.querySelector(".play").onclick = () => {
    let i = 0;
    seek(i);
    slider.value = 0;
    const t = setInterval(() => {
      i += 1;
      if (i >= frames.length) { clearInterval(t); return; }
      slider.value = i;
      seek(i);
    }, 350);
    players.push(t);
  };
}

function render(next) {
  players.forEach(clearInterval);
  players = [];
  showProgress(next.progress);
  pair = next.pair;
  if (!pair) { show("done"); return; }
  show("labeling");
  $("prompt").textContent = pair.prompt;
  // A picture says what the prompt's text would: fold the text away.
  $("prompt-box").open = !(pair.a.svg || pair.b.svg);
  const pointers = (side) => (pair.assist ? pair.assist.pointers.filter((p) => p.side === side) : []);
  renderSide($("side-a"), pair.a, pointers("a"));
  renderSide($("side-b"), pair.b, pointers("b"));
  renderAssist(pair.assist, pair.a, pair.b);
  $("reason").value = "";
  shownAt = performance.now();
  document.body.dataset.pair = pair.id;
}

async function loadNext(id) {
  const q = id == null ? "" : `?pair=${id}`;
  render(await api("GET", `/api/next${q}`));
}

async function answer(a) {
  if (!pair || busy) return;
  busy = true;
  const labelled = pair.id;
  try {
    const reason = $("reason").value.trim();
    await api("POST", "/api/label", {
      pair: labelled, answer: a,
      reason: reason === "" ? null : reason,
      seconds: Math.round((performance.now() - shownAt) / 100) / 10,
    });
    await loadNext();
    status(`Saved pair ${labelled}: ${NAMES[a]}.`);
  } catch (e) {
    status(`Not saved: ${e.message}`, true);
    if (e.status === 401) start();
  } finally {
    busy = false;
  }
}

async function undo() {
  if (busy) return;
  busy = true;
  try {
    const r = await api("POST", "/api/undo");
    if (r.pair == null) {
      status("Nothing to undo.");
    } else {
      await loadNext(r.pair);
      status(`Undone: pair ${r.pair} is back; label it again.`);
    }
  } catch (e) {
    status(`Undo failed: ${e.message}`, true);
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
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if ($("labeling").hidden && $("done").hidden) return;
  if (ev.key in KEYS && !$("labeling").hidden) {
    ev.preventDefault();
    answer(KEYS[ev.key]);
  } else if (ev.key === "u" || ev.key === "U" || ev.key === "Backspace") {
    ev.preventDefault();
    undo();
  }
});

for (const b of document.querySelectorAll("[data-answer]")) {
  b.addEventListener("click", () => answer(b.dataset.answer));
}
$("undo").addEventListener("click", undo);
$("undo-done").addEventListener("click", undo);
$("again").addEventListener("click", () => loadNext());

async function signIn(name, token) {
  const s = await api("POST", "/api/signin", { name, token });
  session.csrf = s.csrf;
  return s;
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("signin-error").textContent = "";
  try {
    await signIn($("name").value.trim(), $("token").value.trim());
    start();
  } catch (e) {
    $("signin-error").textContent = e.message;
  }
});

$("signout").addEventListener("click", async () => {
  try { await api("POST", "/api/signout"); } catch (_) { /* signed out anyway */ }
  session.csrf = null;
  start();
});

async function start() {
  // A link from `goodhart label add-user` carries the token after '#'; it never reaches the server's logs.
  const m = location.hash.match(/^#signin=([^:]+):(.+)$/);
  if (m) {
    history.replaceState(null, "", location.pathname);
    try { await signIn(decodeURIComponent(m[1]), decodeURIComponent(m[2])); } catch (e) {
      $("signin-error").textContent = e.message;
    }
  }
  try {
    const me = await api("GET", "/api/me");
    session.csrf = me.csrf;
    $("who").textContent = me.user;
    $("signout").hidden = false;
    await loadNext();
  } catch (e) {
    if (e.status !== 401) { $("signin-error").textContent = e.message; }
    $("who").textContent = "";
    $("progress").textContent = "";
    $("signout").hidden = true;
    show("signin");
    $("name").focus();
  }
}

start();
