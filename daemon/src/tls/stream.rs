//! The server side of a TLS connection, on rustls' unbuffered API, so that a connection
//! holds no buffer while it has nothing in flight.
//!
//! rustls' buffered `ServerConnection` keeps a 4 KiB receive buffer for the life of every
//! connection: it grows the buffer to 4 KiB before each read and never shrinks it below.
//! With tens of thousands of idle WebSockets that was a third of the daemon's memory per
//! connection. Here the stream owns its three buffers (ciphertext received, plaintext not
//! yet read, ciphertext not yet sent) and frees each one as soon as it is empty. A read
//! waits for the socket with a buffer on the stack, so a connection parked in `poll_read`
//! owns no heap memory beyond rustls' own state.
//!
//! Writes are buffered like a `BufWriter`: plaintext is encrypted as it is written and the
//! ciphertext goes to the socket on flush (or once [`OUT_HIGH`] bytes wait), so a burst of
//! WebSocket frames leaves in one system call.

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    AppDataRecord, ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, UnbufferedStatus,
    WriteTraffic,
};
use rustls::ServerConfig;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at a time, on the stack: a few whole TLS records (up to
/// 16 KiB + 261 bytes each), so that a bulk transfer mostly decrypts in this buffer and only
/// the partial record at its end is copied aside.
const READ_CHUNK: usize = 64 * 1024;
/// Most plaintext one `poll_write` encrypts.
const WRITE_CHUNK: usize = 64 * 1024;
/// Ciphertext that may wait for the socket before writes wait too.
const OUT_HIGH: usize = 64 * 1024;
/// Most ciphertext held for one incomplete message: rustls joins handshake messages of up
/// to 64 KiB across records and refuses larger ones; this is the backstop under that.
const IN_MAX: usize = 80 * 1024;

/// A server TLS stream over `IO`, made by [`accept`].
pub struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet processed: part of a record, between reads.
    incoming: Vec<u8>,
    q: Queues,
    /// close_notify is queued: nothing more may be written.
    write_closed: bool,
}

/// What processing records fills, apart from the connection itself.
#[derive(Default)]
struct Queues {
    /// Plaintext decrypted and not yet read; `plain_at` is how much of it was read.
    plaintext: Vec<u8>,
    plain_at: usize,
    /// Ciphertext to send; `out_at` is how much of it was sent.
    outgoing: Vec<u8>,
    out_at: usize,
    /// The peer sent close_notify, or the socket reached end of file.
    read_closed: bool,
}

/// What the stream may do next, once every complete record received is processed.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Application data may be written.
    Write,
    /// The handshake waits for the peer.
    NeedInput,
    /// Both sides sent close_notify.
    Closed,
}

/// What to do with the connection once it may send application data.
enum Out<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// Completes a server handshake over `io`. Time it out from outside: a peer that stops
/// mid-handshake is waited for.
pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ServerConfig>,
    io: IO,
) -> io::Result<TlsStream<IO>> {
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut stream = TlsStream { io, conn, incoming: Vec::new(), q: Queues::default(), write_closed: false };
    std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

/// Processes the complete records at the start of `input`: plaintext goes to `reader` as
/// far as it has room (saving a copy) and then to `q.plaintext`, what rustls has to send is
/// queued in `q.outgoing`, and `out` is done if application data may be sent. Returns what
/// may happen next and how many bytes of `input` are used up.
fn process_records(
    conn: &mut UnbufferedServerConnection,
    input: &mut [u8],
    q: &mut Queues,
    mut reader: Option<&mut ReadBuf<'_>>,
    mut out: Out<'_>,
) -> io::Result<(Next, usize)> {
    let mut used = 0;
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process_tls_records(&mut input[used..]);
        let mut next = None;
        match state.map_err(tls_error)? {
            ConnectionState::ReadTraffic(mut records) => {
                while let Some(record) = records.next_record() {
                    let AppDataRecord { discard: taken, mut payload } = record.map_err(tls_error)?;
                    discard += taken;
                    if q.plain_at == q.plaintext.len() {
                        if let Some(r) = reader.as_deref_mut() {
                            let n = r.remaining().min(payload.len());
                            r.put_slice(&payload[..n]);
                            payload = &payload[n..];
                        }
                        q.plaintext.clear();
                        q.plain_at = 0;
                    }
                    q.plaintext.extend_from_slice(payload);
                }
            }
            ConnectionState::EncodeTlsData(mut data) => {
                grow_and_retry(&mut q.outgoing, 512, |buf| encode(&mut data, buf))?;
            }
            // The ciphertext is queued in `outgoing`; it goes out on the next flush.
            ConnectionState::TransmitTlsData(data) => data.done(),
            ConnectionState::PeerClosed => q.read_closed = true,
            ConnectionState::Closed => {
                q.read_closed = true;
                next = Some(Next::Closed);
            }
            ConnectionState::BlockedHandshake => next = Some(Next::NeedInput),
            ConnectionState::WriteTraffic(mut traffic) => {
                match std::mem::replace(&mut out, Out::Nothing) {
                    Out::Nothing => {}
                    Out::Data(data) => encrypt(&mut traffic, data, &mut q.outgoing)?,
                    Out::CloseNotify => {
                        grow_and_retry(&mut q.outgoing, 64, |buf| {
                            traffic.queue_close_notify(buf).map_err(encrypt_error)
                        })?;
                    }
                }
                next = Some(Next::Write);
            }
            // Early data is not enabled, so rustls does not offer it.
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected TLS state")),
        }
        used += discard;
        if let Some(next) = next {
            return Ok((next, used));
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_send(cx))?;
            let next = match self.process(None, Out::Nothing) {
                Ok(next) => next,
                Err(e) => return Poll::Ready(Err(self.alert_then(cx, e))),
            };
            if self.q.out_at < self.q.outgoing.len() {
                continue;
            }
            // Done once the peer's Finished is in too, and the session tickets that follow
            // it are sent: a request that arrived with it waits in `plaintext`.
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if next == Next::Closed || self.q.read_closed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the TLS handshake",
                )));
            }
            match ready!(self.poll_fill(cx, None)) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during the TLS handshake",
                    )))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return Poll::Ready(Err(self.alert_then(cx, e))),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// [`process_records`] over what `incoming` holds.
    fn process(&mut self, reader: Option<&mut ReadBuf<'_>>, out: Out<'_>) -> io::Result<Next> {
        let (next, used) = process_records(&mut self.conn, &mut self.incoming, &mut self.q, reader, out)?;
        self.incoming.drain(..used);
        if self.incoming.is_empty() && self.incoming.capacity() > 0 {
            self.incoming = Vec::new();
        }
        Ok(next)
    }

    /// After a TLS error, sends the alert rustls queued for it if the socket takes it now.
    fn alert_then(&mut self, cx: &mut Context<'_>, e: io::Error) -> io::Error {
        let mut nothing = [0u8; 0];
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = self.conn.process_tls_records(&mut nothing[..]).state {
            let _ = grow_and_retry(&mut self.q.outgoing, 64, |buf| encode(&mut data, buf));
        }
        let _ = self.poll_send(cx);
        e
    }

    /// Reads what the socket has and processes it. The read goes to a stack buffer, so
    /// that waiting costs no heap memory, and records complete in it are processed there;
    /// only a partial record is kept in `incoming`. `Ok(0)` is end of file.
    fn poll_fill(&mut self, cx: &mut Context<'_>, reader: Option<&mut ReadBuf<'_>>) -> Poll<io::Result<usize>> {
        if self.incoming.len() >= IN_MAX {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "TLS message too large")));
        }
        let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.incoming.is_empty() {
            let (_, used) = process_records(&mut self.conn, buf.filled_mut(), &mut self.q, reader, Out::Nothing)?;
            self.incoming.extend_from_slice(&buf.filled()[used..]);
        } else {
            self.incoming.extend_from_slice(buf.filled());
            self.process(reader, Out::Nothing)?;
        }
        Poll::Ready(Ok(n))
    }

    /// Writes `outgoing` to the socket, and frees it once all is sent.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let q = &mut self.q;
        while q.out_at < q.outgoing.len() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &q.outgoing[q.out_at..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => q.out_at += n,
            }
        }
        if q.outgoing.capacity() > 0 {
            q.outgoing = Vec::new();
            q.out_at = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Encrypts `data` (or queues close_notify) once the connection may send.
    fn queue(&mut self, out: Out<'_>) -> io::Result<()> {
        match self.process(None, out)? {
            Next::Write => Ok(()),
            Next::NeedInput => Err(io::Error::other("the TLS handshake is not complete")),
            Next::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn encode(
    data: &mut EncodeTlsData<'_, ServerConnectionData>,
    buf: &mut [u8],
) -> Result<usize, Result<usize, io::Error>> {
    match data.encode(buf) {
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => Err(Ok(required_size)),
        other => other.map_err(|e| Err(io::Error::other(e))),
    }
}

fn encrypt_error(e: EncryptError) -> Result<usize, io::Error> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => Ok(required_size),
        e => Err(io::Error::other(e)),
    }
}

fn encrypt(traffic: &mut WriteTraffic<'_, ServerConnectionData>, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    // Each record of up to 16 KiB adds a header, a content type and a tag.
    let guess = data.len() + (data.len() / (16 * 1024) + 1) * 64;
    grow_and_retry(out, guess, |buf| traffic.encrypt(data, buf).map_err(encrypt_error))
}

/// Appends to `out` what `f` writes into a buffer of `guess` bytes, or of the size `f`
/// asks for with `Err(Ok(size))`.
fn grow_and_retry(
    out: &mut Vec<u8>,
    guess: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, Result<usize, io::Error>>,
) -> io::Result<()> {
    let start = out.len();
    let mut size = guess;
    for _ in 0..2 {
        out.resize(start + size, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Ok(required)) => size = required,
            Err(Err(e)) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    out.truncate(start);
    Err(io::Error::other("TLS output buffer size mismatch"))
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        loop {
            let q = &mut this.q;
            if q.plain_at < q.plaintext.len() {
                let n = buf.remaining().min(q.plaintext.len() - q.plain_at);
                buf.put_slice(&q.plaintext[q.plain_at..q.plain_at + n]);
                q.plain_at += n;
                if q.plain_at == q.plaintext.len() {
                    q.plaintext = Vec::new();
                    q.plain_at = 0;
                }
            }
            if buf.filled().len() > before || q.read_closed {
                return Poll::Ready(Ok(()));
            }
            // Anything rustls queues while reading (a key update, a session ticket) goes
            // out with the next write or flush: writing from a read could take the wake-up
            // of a writer waiting on the same socket.
            if ready!(this.poll_fill(cx, Some(buf)))? == 0 {
                this.q.read_closed = true;
                // A peer that closes without close_notify at a record boundary has just
                // gone; closing inside a record is a truncation.
                if !this.incoming.is_empty() {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "TLS record cut short")));
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if this.q.outgoing.len() - this.q.out_at >= OUT_HIGH {
            ready!(this.poll_send(cx))?;
        }
        let n = buf.len().min(WRITE_CHUNK);
        this.queue(Out::Data(&buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            this.queue(Out::CloseNotify)?;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
