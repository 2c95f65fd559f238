//! The producer/consumer contract for streaming one source into another transport with
//! backpressure: `PushProducer` (Twisted's `IPushProducer`), `Consumer` (the consuming
//! protocol's side of `registerProducer`) and `Valve` (a pause flag for timer- or
//! Deferred-fed sources).
//!
//! Pull producers are the connection's own (`Transport::register_producer` and
//! `Protocol::resume_producing`). Tested below and by `tests/proxy.rs`.

use std::cell::Cell;
use std::rc::Rc;

use crate::ctx::Ctx;
use crate::id::ConnId;

/// A source that can be told to slow down, go on or give up: Twisted's `IPushProducer`.
///
/// Its methods run inside the consumer's callbacks and must not call user code: they
/// queue commands on `ctx` (pause another connection's reading, close it) or flip plain
/// data (a [`Valve`]). A [`ConnId`] is a push producer: pausing it pauses that
/// connection's reading, stopping it closes it.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{ConnId, Ctx, PushProducer};
///
/// /// Counts how often the consumer fell behind, and passes the word on to a connection.
/// struct Counting { from: ConnId, pauses: u32 }
/// impl PushProducer for Counting {
///     fn pause_producing(&mut self, ctx: &mut Ctx<'_>) {
///         self.pauses += 1;
///         self.from.pause_producing(ctx);
///     }
///     fn resume_producing(&mut self, ctx: &mut Ctx<'_>) {
///         self.from.resume_producing(ctx);
///     }
///     fn stop_producing(&mut self, ctx: &mut Ctx<'_>) {
///         self.from.stop_producing(ctx);
///     }
/// }
/// ```
pub trait PushProducer: 'static {
    /// The consumer's buffer passed its high-water mark: stop sending until
    /// [`PushProducer::resume_producing`].
    fn pause_producing(&mut self, ctx: &mut Ctx<'_>);

    /// The consumer's buffer drained below its low-water mark: go on.
    fn resume_producing(&mut self, ctx: &mut Ctx<'_>);

    /// The consumer is gone (or no longer wants data): stop for good and release what
    /// the source holds.
    fn stop_producing(&mut self, ctx: &mut Ctx<'_>);
}

/// A connection as a push producer: pausing it stops its reading (TCP flow control then
/// slows its peer), stopping it flushes and closes it.
impl PushProducer for ConnId {
    fn pause_producing(&mut self, ctx: &mut Ctx<'_>) {
        ctx.pause_reading(*self);
    }

    fn resume_producing(&mut self, ctx: &mut Ctx<'_>) {
        ctx.resume_reading(*self);
    }

    fn stop_producing(&mut self, ctx: &mut Ctx<'_>) {
        ctx.lose(*self);
    }
}

/// What a [`Valve`] tells its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ValveState {
    /// Produce.
    #[default]
    Open,
    /// Wait: the consumer is behind.
    Paused,
    /// Give up: the consumer is gone.
    Stopped,
}

/// A shared pause flag: the push producer for sources that are not connections — a
/// `LoopingCall`, a chain of Deferreds, a file read piece by piece. The consumer
/// registers one end; the source holds a clone and checks [`Valve::state`] before each
/// piece (data only: no callback runs when it flips).
///
/// # Examples
///
/// ```
/// use torsion_reactor::{Consumer, Valve, ValveState};
/// # use torsion_reactor::{ManualClock, Reactor, ReactorOptions};
/// # let mut reactor = Reactor::with_clock(ReactorOptions::default(), ManualClock::new())?;
/// # let mut ctx = reactor.ctx();
///
/// let valve = Valve::new();
/// let mut consumer = Consumer::new();
/// consumer.register_producer(&mut ctx, valve.clone());
/// consumer.pause_writing(&mut ctx); // the consumer's buffer is full
/// assert_eq!(valve.state(), ValveState::Paused);
/// consumer.resume_writing(&mut ctx);
/// assert_eq!(valve.state(), ValveState::Open);
/// consumer.connection_lost(&mut ctx);
/// assert_eq!(valve.state(), ValveState::Stopped);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Valve(Rc<Cell<ValveState>>);

impl Valve {
    /// An open valve.
    pub fn new() -> Valve {
        Valve::default()
    }

    /// What the consumer last said.
    pub fn state(&self) -> ValveState {
        self.0.get()
    }

    /// Whether the source may produce now.
    pub fn is_open(&self) -> bool {
        self.0.get() == ValveState::Open
    }
}

impl PushProducer for Valve {
    fn pause_producing(&mut self, _ctx: &mut Ctx<'_>) {
        if self.0.get() == ValveState::Open {
            self.0.set(ValveState::Paused);
        }
    }

    fn resume_producing(&mut self, _ctx: &mut Ctx<'_>) {
        if self.0.get() == ValveState::Paused {
            self.0.set(ValveState::Open);
        }
    }

    fn stop_producing(&mut self, _ctx: &mut Ctx<'_>) {
        self.0.set(ValveState::Stopped);
    }
}

/// The consuming protocol's side of the contract (Twisted's `IConsumer`): holds the
/// registered push producer and drives it from the protocol's own flow-control
/// callbacks. Forward [`crate::Protocol::pause_writing`],
/// [`crate::Protocol::resume_writing`] and [`crate::Protocol::connection_lost`] to it.
///
/// A producer registered while the consumer is behind is paused at once; one that is
/// unregistered is neither resumed nor stopped.
///
/// # Examples
///
/// ```
/// use torsion_reactor::{ConnId, Consumer, Ctx, Protocol, Reason, Transport};
///
/// /// Writes what another connection forwards to it; that connection slows down when
/// /// this one's peer reads slowly, and is closed when this one ends.
/// struct Sink { consumer: Consumer, from: ConnId }
/// impl Protocol for Sink {
///     fn connection_made(&mut self, t: &mut Transport<'_>) {
///         self.consumer.register_producer(t.ctx(), self.from);
///     }
///     fn pause_writing(&mut self, t: &mut Transport<'_>) {
///         self.consumer.pause_writing(t.ctx());
///     }
///     fn resume_writing(&mut self, t: &mut Transport<'_>) {
///         self.consumer.resume_writing(t.ctx());
///     }
///     fn connection_lost(&mut self, ctx: &mut Ctx<'_>, _reason: Reason) {
///         self.consumer.connection_lost(ctx);
///     }
///     fn data_received(&mut self, _t: &mut Transport<'_>, _d: &[u8]) {}
/// }
/// ```
#[derive(Default)]
pub struct Consumer {
    producer: Option<Box<dyn PushProducer>>,
    behind: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("has_producer", &self.producer.is_some())
            .field("behind", &self.behind)
            .finish()
    }
}

impl Consumer {
    /// A consumer with no producer, not behind.
    pub fn new() -> Consumer {
        Consumer::default()
    }

    /// Registers `producer` (replacing one registered before, which is left alone); it is
    /// paused at once if the consumer is behind.
    pub fn register_producer(&mut self, ctx: &mut Ctx<'_>, producer: impl PushProducer) {
        let mut p: Box<dyn PushProducer> = Box::new(producer);
        if self.behind {
            p.pause_producing(ctx);
        }
        self.producer = Some(p);
    }

    /// Forgets the producer without telling it anything; returns it.
    pub fn unregister_producer(&mut self) -> Option<Box<dyn PushProducer>> {
        self.producer.take()
    }

    /// Whether a producer is registered.
    pub fn has_producer(&self) -> bool {
        self.producer.is_some()
    }

    /// Whether the consumer is behind (between `pause_writing` and `resume_writing`).
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// The consumer's buffer passed high water: pauses the producer.
    pub fn pause_writing(&mut self, ctx: &mut Ctx<'_>) {
        self.behind = true;
        if let Some(p) = self.producer.as_mut() {
            p.pause_producing(ctx);
        }
    }

    /// The consumer's buffer drained: resumes the producer.
    pub fn resume_writing(&mut self, ctx: &mut Ctx<'_>) {
        self.behind = false;
        if let Some(p) = self.producer.as_mut() {
            p.resume_producing(ctx);
        }
    }

    /// The consumer is gone: stops the producer and forgets it.
    pub fn connection_lost(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(mut p) = self.producer.take() {
            p.stop_producing(ctx);
        }
    }
}
