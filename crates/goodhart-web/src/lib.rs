//! The labeling web app: people sign in with a one-time token, compare the
//! pairs queued in a label store, and their answers become comparisons like
//! any other (named by the person), in the same store.
//!
//! One HTML page, one script and one style sheet, all embedded in the binary
//! (no CDN, no network), over a small JSON API:
//!
//! | route              | what                                                    |
//! |--------------------|---------------------------------------------------------|
//! | `GET /`            | the page                                                |
//! | `POST /api/signin` | `{"name","token"}` → session cookie + CSRF token        |
//! | `GET /api/me`      | who is signed in                                        |
//! | `GET /api/next`    | the next pair for this person (`?pair=ID`: that one)   |
//! | `POST /api/label`  | `{"pair","answer","reason"?,"seconds"?}`                |
//! | `POST /api/undo`   | withdraw this person's last label                       |
//! | `POST /api/signout`|                                                         |
//!
//! and the review page (`GET /review`): people compare rollouts of candidate
//! formal goals' policies and keep the goal under review or choose another.
//!
//! Every write needs a session and the session's CSRF token in the
//! `x-goodhart-csrf` header, is refused if the browser says it comes from
//! another origin, is validated, and is committed in one transaction before it
//! is acknowledged, and only if the store's file is still the one opened (not
//! removed, replaced, cut short, overwritten or made read-only) after the commit. Bad requests get a 4xx with `{"error": "..."}`.
//!
//! The modules, each importing only those listed before it:
//!
//! | module    | what                                                            |
//! |-----------|-----------------------------------------------------------------|
//! | `error`   | `ApiError`: how a request is refused                            |
//! | `body`    | request bodies: JSON objects only                               |
//! | `store_file` | the store's file: still the one opened, whole, writable      |
//! | `app`     | `App`: the store, the tasks, known hosts, the sign-in throttle  |
//! | `session` | the session cookie, the signed-in person, the CSRF check        |
//! | `view`    | a queued pair as the page shows it                              |
//! | `signin`  | the sign-in, sign-out and who-am-I handlers                     |
//! | `label`   | the labeling handlers: next pair, label, undo                   |
//! | `review`  | the review page and its handlers                                |
//! | `router`  | every route and the middleware in front of them                 |
//! | `serve`   | the connection loop                                             |

#[cfg(not(unix))]
compile_error!("the label server checks its store's file through Unix file APIs");

mod app;
mod body;
mod error;
mod label;
mod review;
mod router;
mod serve;
mod session;
mod signin;
mod store_file;
mod view;

pub use app::{App, ServeOptions, SIGN_IN_FAILURES_PER_MINUTE};
pub use error::ApiError;
pub use router::{router, MAX_BODY, REQUEST_TIMEOUT};
pub use serve::{
    serve, HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT,
    SHUTDOWN_DEADLINE,
};
pub use session::{COOKIE, CSRF_HEADER};
