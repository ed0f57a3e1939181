//! The label store's tables, triggers and indexes.

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (task, text)
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    prompt_id INTEGER NOT NULL REFERENCES prompts(id),
    completion TEXT NOT NULL,
    policy TEXT NOT NULL,          -- which policy or checkpoint produced it
    step INTEGER,                  -- its training step, when it has one
    logprob REAL,                  -- log-probability under that policy
    created_at INTEGER NOT NULL,   -- unix milliseconds
    finished INTEGER               -- 1: ended with EOS, 0: cut at the length limit, NULL: not known (imported)
);
CREATE INDEX IF NOT EXISTS samples_prompt ON samples(prompt_id);
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY,
    sample_a INTEGER NOT NULL REFERENCES samples(id),
    sample_b INTEGER NOT NULL REFERENCES samples(id),
    labeler TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('a', 'b', 'tie', 'cant_tell')),
    reason TEXT,
    batch TEXT,                    -- the round of labelling that asked for it
    seconds REAL,                  -- time the labeler took, when known
    created_at INTEGER NOT NULL,
    retracted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS comparisons_labeler ON comparisons(labeler);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    comparison_id INTEGER,
    detail TEXT
);
-- People who label in the web app, their sessions, and the pairs queued for them.
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    token_hash TEXT,               -- SHA-256 of the one-time sign-in token; NULL once used
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,   -- SHA-256 of the session cookie
    user TEXT NOT NULL REFERENCES users(name),
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER              -- the last request; a session idle too long ends
);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY,
    sample_a INTEGER NOT NULL REFERENCES samples(id),
    sample_b INTEGER NOT NULL REFERENCES samples(id),
    batch TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0   -- its batch was withdrawn: shown to nobody
);
CREATE INDEX IF NOT EXISTS queue_batch ON queue(batch);
-- Assistance: what an assistant showed people beside a queued pair (the steps
-- it pointed at, turn by turn), and the queued pair and assistance each
-- person's label was made with.
CREATE TABLE IF NOT EXISTS queue_assistants (
    queue_id INTEGER PRIMARY KEY REFERENCES queue(id),
    assistant TEXT NOT NULL,       -- the experiment's labeler whose assistant pointed
    turns INTEGER                  -- debate turns; NULL: one critic's pointer per side
);
CREATE TABLE IF NOT EXISTS queue_pointers (
    queue_id INTEGER NOT NULL REFERENCES queue(id),
    side TEXT NOT NULL CHECK (side IN ('a', 'b')),   -- the completion pointed into
    turn INTEGER NOT NULL,         -- 0-based; a critic's one pointer is turn 0
    step INTEGER NOT NULL,         -- 0-based step of that completion
    span_start INTEGER NOT NULL,   -- the step's byte range in the completion
    span_end INTEGER NOT NULL,
    PRIMARY KEY (queue_id, side, turn)
);
CREATE TABLE IF NOT EXISTS labels_shown (
    comparison_id INTEGER PRIMARY KEY REFERENCES comparisons(id),
    queue_id INTEGER NOT NULL REFERENCES queue(id),
    assistant TEXT                 -- NULL: shown with no assistant
);
-- Review and revise: each item shows a few candidate formal goals, each with
-- rollouts of its policy; a person keeps the current goal (position 0) or picks another.
CREATE TABLE IF NOT EXISTS review_items (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    batch TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS review_candidates (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES review_items(id),
    position INTEGER NOT NULL,     -- 0: the goal under review; others: alternatives
    goal TEXT NOT NULL,
    UNIQUE (item_id, position)
);
CREATE TABLE IF NOT EXISTS review_rollouts (
    candidate_id INTEGER NOT NULL REFERENCES review_candidates(id),
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (candidate_id, position)
);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES review_items(id),
    reviewer TEXT NOT NULL,
    chosen INTEGER NOT NULL REFERENCES review_candidates(id),
    reason TEXT,
    seconds REAL,
    created_at INTEGER NOT NULL,
    UNIQUE (item_id, reviewer)
);
CREATE INDEX IF NOT EXISTS comparisons_pair ON comparisons(sample_a, sample_b);
CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history
    BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history
    BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
";
