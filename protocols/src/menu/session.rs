//! The menu service as an `async fn`: the same dialogue as `MenuProtocol`, read top to
//! bottom — read a line, answer, sleep through the hold.
//!
//! Tested by `tests/async_menu.rs` (identical transcripts to `MenuProtocol`).

use torsion_reactor::aio::{self, AsyncConn};

use super::{line_codec, Account, MenuOptions, Step, BYE, HOLD, MENU, OPERATOR, TOO_LONG, WELCOME};
use crate::aio::ReadFrame;
use crate::codec::CodecError;

/// Serves one menu session on `conn`, then closes it.
///
/// # Examples
///
/// ```no_run
/// use torsion_protocols::menu::{serve_menu, MenuOptions};
/// use torsion_reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// reactor.listen_async("tcp:10086", |conn| serve_menu(conn, MenuOptions::default()))?;
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn serve_menu(mut conn: AsyncConn, opts: MenuOptions) {
    let mut account = Account::new(&opts);
    let mut codec = line_codec(&opts);
    let mut out = format!("{WELCOME}{MENU}");
    loop {
        if conn.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        let line = match conn.read_frame(&mut codec).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                let too_long = e
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<CodecError>())
                    .is_some_and(|e| matches!(e, CodecError::LineTooLong { .. }));
                if too_long {
                    let _ = conn.write_all(TOO_LONG.as_bytes()).await;
                }
                break;
            }
        };
        out = match account.choose(&line) {
            Step::Reply(text) => format!("{text}{MENU}"),
            Step::Hold => {
                if conn.write_all(HOLD.as_bytes()).await.is_err() {
                    return;
                }
                aio::sleep(opts.operator_delay).await;
                format!("{OPERATOR}{MENU}")
            }
            Step::Quit => {
                let _ = conn.write_all(BYE.as_bytes()).await;
                break;
            }
        };
    }
    conn.close();
}
