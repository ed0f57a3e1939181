//! A queued pair as the labeling page shows it: each side's text and the
//! task's picture of it, and what an assistant points at.

use goodhart_data::feedback::{Assist, PairSide, QueuedPair};
use serde::Serialize;

use crate::app::App;

/// One completion as the labeler sees it.
#[derive(Serialize)]
struct Side {
    text: String,
    /// The task's picture of it (gridworld: the camera's frames), if any.
    svg: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct PairView {
    id: i64,
    task: String,
    prompt: String,
    a: Side,
    b: Side,
    /// What an assistant shows beside the pair, if the queue was made with one.
    assist: Option<AssistView>,
}

/// An assistant's pointers, placed in the text as the page counts (UTF-16 units).
#[derive(Serialize)]
struct AssistView {
    assistant: String,
    /// Debate turns; `null`: a critic's one pointer per side.
    turns: Option<usize>,
    pointers: Vec<PointerView>,
}

#[derive(Serialize)]
struct PointerView {
    side: PairSide,
    turn: usize,
    /// 1-based, as people count steps.
    step: usize,
    from: usize,
    to: usize,
}

impl AssistView {
    fn new(assist: Assist, a: &str, b: &str) -> Self {
        // Offsets are bytes in the store; the page's strings count UTF-16 units.
        let units = |text: &str, at: usize| text.get(..at).map_or(0, |s| s.encode_utf16().count());
        let pointers = assist
            .pointers
            .into_iter()
            .map(|p| {
                let text = match p.side {
                    PairSide::A => a,
                    PairSide::B => b,
                };
                PointerView {
                    side: p.side,
                    turn: p.turn,
                    step: p.step + 1,
                    from: units(text, p.start),
                    to: units(text, p.end),
                }
            })
            .collect();
        Self {
            assistant: assist.assistant,
            turns: assist.turns,
            pointers,
        }
    }
}

/// A queued pair as the page shows it: the task's pictures, the assistant's pointers.
pub(crate) fn view(app: &App, p: QueuedPair) -> PairView {
    let task = app.task(&p.task);
    let render = |c: &str| {
        task.as_ref()
            .and_then(|t| t.render_for_labeler(&p.prompt, c))
    };
    PairView {
        id: p.id,
        assist: p.assist.map(|x| AssistView::new(x, &p.a, &p.b)),
        a: Side {
            svg: render(&p.a),
            text: p.a.clone(),
        },
        b: Side {
            svg: render(&p.b),
            text: p.b.clone(),
        },
        task: p.task,
        prompt: p.prompt,
    }
}
