//! Waiting for a producer's records to be acknowledged: what lingers is sent at once, and the
//! waiting thread wakes on each delivery report instead of polling in slices or spinning.

use std::ffi::c_void;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// How long a kick keeps `linger.ms` lifted, in milliseconds: long enough for the broker
/// threads to wake and take every queued record.
const SEND_NOW: i32 = 1;
/// How often a drain kicks again (records retried after an error are queued anew).
const SEND_NOW_EVERY: Duration = Duration::from_millis(10);

/// Serves a producer's delivery reports and waits until none is outstanding.
///
/// Three things made the plain ways slow, each measured on commits:
/// - rust-rdkafka's `flush` (which its `commit_transaction` also calls first) waits in
///   slices of 100 ms that always run to their end;
/// - its `poll(timeout)` runs to the end of the timeout, and once less than a millisecond is
///   left it polls with a zero timeout, spinning: a drain served in 1 ms polls spun for most
///   of each millisecond and ended on whole milliseconds only;
/// - a zero-timeout flush does not lift `linger.ms`: librdkafka raises its "flushing" flag
///   only for the length of the call, and the broker threads it wakes find the flag lowered
///   again, so the records sent last sat out their linger (5 ms).
///
/// So a drain has a helper thread hold librdkafka's flush for [`SEND_NOW`] ms (the kick),
/// which lifts linger while this thread waits, and librdkafka calls back when a report
/// reaches the producer's empty event queue, which wakes the waiting thread.
pub struct Drainer<C: ProducerContext + 'static> {
    /// Declared first: the callback is switched off before the producer can go.
    reports: Reports,
    kicks: mpsc::Sender<()>,
    producer: Arc<BaseProducer<C>>,
}

impl<C: ProducerContext + 'static> Drainer<C> {
    /// Watches `producer`'s event queue and starts its kick thread (which ends when the
    /// drainer is dropped).
    ///
    /// # Errors
    /// The kick thread cannot be spawned.
    pub fn new(producer: &Arc<BaseProducer<C>>) -> Result<Self, KafkaError> {
        let (kicks, kicked) = mpsc::channel::<()>();
        let kicker = Arc::clone(producer);
        std::thread::Builder::new()
            .name("eddy-kick".to_owned())
            .spawn(move || {
                while kicked.recv().is_ok() {
                    send_now(&kicker);
                }
            })
            .map_err(|e| {
                KafkaError::ClientCreation(format!("cannot spawn a producer's kick thread: {e}"))
            })?;
        Ok(Drainer {
            reports: Reports::watch(producer.client().native_ptr()),
            kicks,
            producer: Arc::clone(producer),
        })
    }

    /// Has every queued record sent now and serves delivery reports until nothing is in
    /// flight, failing after `timeout`.
    ///
    /// # Errors
    /// The records are not acknowledged within `timeout`.
    pub fn drain(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        let mut kicked: Option<Instant> = None;
        loop {
            self.serve();
            if self.producer.in_flight_count() == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            if kicked.is_none_or(|at| now.duration_since(at) >= SEND_NOW_EVERY) {
                self.kick();
                kicked = Some(now);
            }
            self.reports.wait(SEND_NOW_EVERY.min(deadline - now));
        }
    }

    /// Has every queued record sent now, without waiting (the kick thread lifts linger for
    /// [`SEND_NOW`] ms). Best effort: librdkafka wakes the broker threads when the flush
    /// starts, and one that is scheduled only after it ended finds linger in force again.
    /// A drain kicks every [`SEND_NOW_EVERY`] until everything is acknowledged.
    pub fn kick(&self) {
        // The kick thread only ends with the drainer, so the send cannot fail.
        let _ = self.kicks.send(());
    }

    /// Waits up to `timeout` for a delivery report and serves every one at hand.
    pub fn serve_for(&self, timeout: Duration) {
        self.reports.wait(timeout);
        self.serve();
    }

    /// Serves every event at hand (delivery reports, logs, statistics) without waiting.
    fn serve(&self) {
        // A zero-timeout poll serves at most one event; the queue's length bounds the loop
        // (events arriving meanwhile wake the next wait).
        for _ in 0..self.reports.len() {
            self.producer.poll(Duration::ZERO);
        }
    }
}

/// Has the broker threads send every queued record now: librdkafka's flush with a timeout
/// keeps its "flushing" flag, which lifts `linger.ms`, raised while it waits. Delivery
/// reports are events here (rust-rdkafka's producer), which that flush does not serve, so it
/// returns after [`SEND_NOW`] ms at most and the drain serves them meanwhile.
#[allow(unsafe_code)] // librdkafka's documented, thread-safe rd_kafka_flush
fn send_now<C: ProducerContext>(producer: &BaseProducer<C>) {
    let client = producer.client().native_ptr();
    // SAFETY: `client` is the live handle `producer` owns for at least this call.
    let _ = unsafe { rdsys::rd_kafka_flush(client, SEND_NOW) };
}

/// Set by librdkafka when an event reaches the producer's empty event queue.
#[derive(Default)]
struct Arrival {
    arrived: Mutex<bool>,
    cond: Condvar,
}

impl Arrival {
    fn notify(&self) {
        let mut arrived = self
            .arrived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *arrived = true;
        self.cond.notify_one();
    }

    /// Waits until an arrival was noted or `timeout` passed, and clears the note.
    fn wait(&self, timeout: Duration) {
        let mut arrived = self
            .arrived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*arrived {
            arrived = self
                .cond
                .wait_timeout(arrived, timeout)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *arrived = false;
    }
}

/// A handle on a client's main (event) queue with librdkafka's callback switched on.
struct Reports {
    queue: *mut rdsys::rd_kafka_queue_t,
    arrival: Arc<Arrival>,
}

// SAFETY: librdkafka queue handles may be used from any thread; `arrival` is Sync.
#[allow(unsafe_code)]
unsafe impl Send for Reports {}
// SAFETY: as above; every call through the handle is a thread-safe librdkafka call.
#[allow(unsafe_code)]
unsafe impl Sync for Reports {}

/// librdkafka's queue callback: runs on a librdkafka thread, with the queue locked, when an
/// event reaches the empty queue.
#[allow(unsafe_code)]
unsafe extern "C" fn on_event(_client: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Arrival` a `Reports` keeps alive until it has switched this
    // callback off (under the same queue lock this call runs under).
    let arrival = unsafe { &*opaque.cast::<Arrival>() };
    arrival.notify();
}

impl Reports {
    #[allow(unsafe_code)]
    fn watch(client: *mut rdsys::rd_kafka_t) -> Self {
        let arrival = Arc::new(Arrival::default());
        // SAFETY: `client` is a live handle; the queue handle is destroyed in `drop`, and the
        // callback's opaque outlives the callback (switched off first in `drop`).
        let queue = unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(client);
            rdsys::rd_kafka_queue_cb_event_enable(
                queue,
                Some(on_event),
                Arc::as_ptr(&arrival).cast_mut().cast::<c_void>(),
            );
            queue
        };
        Reports { queue, arrival }
    }

    /// Events waiting in the queue.
    #[allow(unsafe_code)]
    fn len(&self) -> usize {
        // SAFETY: the handle is live until `drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.queue) }
    }

    fn wait(&self, timeout: Duration) {
        if self.len() == 0 {
            self.arrival.wait(timeout);
        }
    }
}

impl Drop for Reports {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: switching the callback off takes the queue lock, so no call of it is under
        // way afterwards and `arrival` may go; then the handle is released.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue, None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue);
        }
    }
}
