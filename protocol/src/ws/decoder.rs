//! The incremental decoder of frames from the peer (RFC 6455 sections 5 and 8.1).
//!
//! One [`Decoder`] lives in every connection, so it is built to be small and cheap when idle:
//! it owns no read buffer (it decodes from the connection's [`BytesMut`]) and its message buffer
//! is `Vec::new()`, which does not allocate, except while a fragmented message is arriving.
//!
//! Design choices, and why:
//! - **Two ways out, one state machine.** [`Decoder::decode`] returns owned [`Message`]s and
//!   drops the bytes it used from a [`BytesMut`]: the server takes the text and parses its JSON
//!   in place. [`Decoder::decode_in_place`] decodes from any `&mut [u8]` and returns a
//!   [`MessageRef`] that borrows the payload where it lies, with the count of bytes the caller
//!   drops: a client that reads a fan-out (the load generator, the tests' client) neither
//!   allocates nor copies per message. Both are thin wrappers of one private loop, so they
//!   cannot disagree; the `frame_decoder` fuzz target checks that they do not. The loop and
//!   the header parser are `#[inline]` and hand back a small `Copy` step, so that in another
//!   crate's receive loop they cost what a hand-written header parser did (the load
//!   generator's `receive_parse` bench in `bench/benches/frames.rs` measures it).
//! - **Need-more is `Ok(None)`.** An incomplete frame stays in the caller's buffer, untouched;
//!   the caller reads more and calls again. The frames of a fragmented message are consumed as
//!   they complete (their payload moves into the decoder's message buffer), so the caller's
//!   buffer never has to hold a whole message.
//! - **Limits are checked from the header.** The announced length is compared with the frame
//!   and message limits before the payload is waited for, so a peer cannot make the server
//!   buffer a frame it will refuse anyway.
//! - **Control frames between fragments are returned at once.** Section 5.4: "An endpoint MUST
//!   be capable of handling control frames in the middle of a fragmented message." Returning
//!   them immediately lets the connection answer a ping or a close without waiting for the end
//!   of the message, and spares the decoder a queue.
//! - **UTF-8 fails fast.** Text is validated as it arrives, including the part of a frame
//!   that is still incomplete, so an invalid byte fails the connection before the rest of the
//!   message is read (Autobahn's section 6 measures this).
//! - **Unmasking is in place,** in the caller's buffer, before the frame's bytes are dropped
//!   from it.
//! - **Binary messages are returned as such**; whether a binary message is acceptable is the
//!   application's decision, not the framing's.
//! - **Errors are final.** An error means "fail the connection with
//!   [`ProtocolError::close_code`]"; the decoder drops its partial message so the memory goes
//!   back at once.
//! - **No panics on any input.** Lengths are checked before use and slices are taken with
//!   `get`, so fuzzed bytes can only produce `Ok` or `Err`.

use bytes::{Buf, BytesMut};

use super::close::{CloseFrame, CloseRef};
use super::frame::{FrameHeader, Opcode};
use super::mask::{apply_mask, key_at};
use super::utf8::Utf8Validator;
use crate::Limits;

/// What the decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest frame payload, in bytes ([`Limits::max_frame_size`]).
    pub max_frame_size: usize,
    /// Largest message, all fragments together ([`Limits::max_message_size`]).
    pub max_message_size: usize,
    /// The role of the peer: `true` when decoding a client's frames (a server), which must be
    /// masked; `false` when decoding a server's frames (a client, such as the load generator),
    /// which must not be. Section 5.1: "The server MUST close the connection upon receiving a
    /// frame that is not masked", and "A client MUST close a connection if it detects a masked
    /// frame."
    pub require_mask: bool,
}

impl DecoderConfig {
    /// The configuration of a server decoding its clients' frames.
    pub fn server(limits: &Limits) -> Self {
        Self {
            max_frame_size: limits.max_frame_size,
            max_message_size: limits.max_message_size,
            require_mask: true,
        }
    }

    /// The configuration of a client decoding a server's frames.
    pub fn client(limits: &Limits) -> Self {
        Self {
            require_mask: false,
            ..Self::server(limits)
        }
    }
}

/// A complete message or control frame. Payloads are unmasked; `Text` is valid UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (all fragments joined), valid UTF-8.
    Text(Vec<u8>),
    /// A binary message (all fragments joined).
    Binary(Vec<u8>),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong (solicited or not).
    Pong(Vec<u8>),
    /// A close frame, with its code and reason if it had a body.
    Close(Option<CloseFrame>),
}

/// A complete message or control frame decoded by [`Decoder::decode_in_place`]: a
/// [`Message`] whose payload is borrowed, from the caller's buffer (unmasked in place) or, for
/// a fragmented message, from the decoder's own message buffer. `Text` is valid UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A text message (all fragments joined), valid UTF-8.
    Text(&'a [u8]),
    /// A binary message (all fragments joined).
    Binary(&'a [u8]),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (solicited or not).
    Pong(&'a [u8]),
    /// A close frame, with its code and reason if it had a body.
    Close(Option<CloseRef<'a>>),
}

impl MessageRef<'_> {
    /// The same message, owned.
    pub fn to_message(&self) -> Message {
        match *self {
            Self::Text(p) => Message::Text(p.to_vec()),
            Self::Binary(p) => Message::Binary(p.to_vec()),
            Self::Ping(p) => Message::Ping(p.to_vec()),
            Self::Pong(p) => Message::Pong(p.to_vec()),
            Self::Close(c) => Message::Close(c.map(CloseRef::to_frame)),
        }
    }
}

/// What [`Decoder::decode_in_place`] did with the front of the caller's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct InPlace<'a> {
    /// Bytes at the front of the buffer that the decoder is done with: whole frames, including
    /// those of a fragment whose payload moved into the decoder. The caller drops them before
    /// the next call, whether or not a message came with them.
    pub consumed: usize,
    /// The message those bytes completed; `None`: need more bytes.
    pub message: Option<MessageRef<'a>>,
}

/// Why the peer's frames fail the connection.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A client frame without a mask.
    #[error("client frame is not masked")]
    Unmasked,
    /// A server frame with a mask.
    #[error("server frame is masked")]
    UnexpectedMask,
    /// RSV1, RSV2 or RSV3 set, with no extension negotiated.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// Opcode 0x3-0x7 or 0xB-0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame payload longer than 125 bytes")]
    ControlTooLong,
    /// A continuation frame with no fragmented message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is in progress.
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// A 64-bit payload length with its most significant bit set.
    #[error("64-bit payload length with the most significant bit set")]
    LengthOverflow,
    /// A frame longer than [`DecoderConfig::max_frame_size`].
    #[error("frame of {len} bytes is larger than {max} bytes")]
    FrameTooLarge {
        /// The announced payload length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A message longer than [`DecoderConfig::max_message_size`].
    #[error("message larger than {max} bytes")]
    MessageTooLarge {
        /// The limit.
        max: usize,
    },
    /// A text message or close reason that is not UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    #[error("close frame payload of one byte")]
    InvalidClosePayload,
    /// A close frame with a code a peer may not send.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
}

impl ProtocolError {
    /// The close code to fail the connection with (RFC 6455 section 7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            // 1007: "data within a message that was not consistent with the type of the
            // message (e.g., non-UTF-8 data within a text message)".
            Self::InvalidUtf8 => 1007,
            // 1009: "a message that is too big for it to process".
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => 1009,
            // 1002: "terminating the connection due to a protocol error".
            Self::Unmasked
            | Self::UnexpectedMask
            | Self::ReservedBits
            | Self::ReservedOpcode(_)
            | Self::FragmentedControl
            | Self::ControlTooLong
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::LengthOverflow
            | Self::InvalidClosePayload
            | Self::InvalidCloseCode(_) => 1002,
        }
    }
}

/// The data type of a fragmented message in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// The type of a completed message with a payload for the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Data {
    Text,
    Binary,
    Ping,
    Pong,
}

/// Where the payload of a completed message lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    /// In the caller's buffer, unmasked, from `start` to the end of the consumed bytes: a
    /// message of one frame, or a control frame.
    Frame { start: usize },
    /// In the decoder's message buffer: the fragments of a message, joined.
    Assembled,
}

/// A message completed by the decoding loop, its payload left where it lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Completed {
    Data(Data, Payload),
    /// A close frame, whose payload (in the caller's buffer from `start`) the caller of the
    /// loop parses, failing on a bad one.
    Close {
        start: usize,
    },
}

/// What the decoding loop did: the bytes of the frames it processed, and the message they
/// completed. Small and `Copy`, so that it comes back in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    consumed: usize,
    completed: Option<Completed>,
}

/// Decodes the peer's frames into messages. See the module documentation.
#[derive(Debug)]
pub struct Decoder {
    cfg: DecoderConfig,
    /// Payload of the fragments received so far; empty and unallocated between messages.
    message: Vec<u8>,
    /// The type of the fragmented message in progress, if any.
    fragmented: Option<Kind>,
    /// UTF-8 state of the text in progress.
    utf8: Utf8Validator,
    /// Payload bytes of the incomplete text frame at the front of the caller's buffer already
    /// fed to `utf8`.
    checked: usize,
    /// `message` is lent out by [`Decoder::decode_in_place`]; the next call releases it.
    lent: bool,
}

/// Bytes unmasked at a time into a stack buffer to validate a frame not yet complete.
const PEEK_CHUNK: usize = 256;

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new(cfg: DecoderConfig) -> Self {
        Self {
            cfg,
            message: Vec::new(),
            fragmented: None,
            utf8: Utf8Validator::new(),
            checked: 0,
            lent: false,
        }
    }

    /// Decodes at most one complete message from the front of `buf`, consuming the bytes of
    /// every frame it processes (a non-final fragment's payload moves into the decoder's own
    /// message buffer). `Ok(None)`: need more bytes; the bytes of an incomplete frame are left in
    /// `buf`, and the next call must be given the same buffer with more bytes appended.
    /// Control frames may arrive between fragments and are returned at once.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        let Step {
            consumed,
            completed,
        } = self.decode_frames_or_reset(buf)?;
        let message = match completed {
            None => None,
            Some(Completed::Close { start }) => {
                let payload = buf.get(start..consumed).unwrap_or_default();
                let close = self.close_or_reset(payload)?;
                Some(Message::Close(close.map(CloseRef::to_frame)))
            }
            Some(Completed::Data(data, payload)) => {
                let payload = match payload {
                    Payload::Frame { start } => {
                        buf.get(start..consumed).unwrap_or_default().to_vec()
                    }
                    Payload::Assembled => std::mem::take(&mut self.message),
                };
                Some(match data {
                    Data::Text => Message::Text(payload),
                    Data::Binary => Message::Binary(payload),
                    Data::Ping => Message::Ping(payload),
                    Data::Pong => Message::Pong(payload),
                })
            }
        };
        // Drop the frames with `advance`: unlike `split_to`, that keeps the buffer's
        // single-owner representation.
        buf.advance(consumed);
        Ok(message)
    }

    /// Decodes at most one complete message from the front of `buf` without copying it: the
    /// payload is unmasked in place and borrowed, from `buf` or, for a fragmented message, from
    /// the decoder's message buffer (lent until the next call, which releases it).
    ///
    /// The same decoding as [`decode`](Self::decode), with the consumption left to the caller:
    /// [`InPlace::consumed`] bytes at the front of `buf` are done with, and the next call must
    /// be given the buffer without them, with any new bytes appended. `message: None` means
    /// need more bytes; the bytes of an incomplete frame are among those not consumed.
    #[inline]
    pub fn decode_in_place<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> Result<InPlace<'a>, ProtocolError> {
        let Step {
            consumed,
            completed,
        } = self.decode_frames_or_reset(buf)?;
        let buf: &'a [u8] = buf;
        let message = match completed {
            None => None,
            Some(Completed::Close { start }) => {
                let payload = buf.get(start..consumed).unwrap_or_default();
                Some(MessageRef::Close(self.close_or_reset(payload)?))
            }
            Some(Completed::Data(data, payload)) => {
                let payload: &'a [u8] = match payload {
                    Payload::Frame { start } => buf.get(start..consumed).unwrap_or_default(),
                    Payload::Assembled => {
                        self.lent = true;
                        &self.message
                    }
                };
                Some(match data {
                    Data::Text => MessageRef::Text(payload),
                    Data::Binary => MessageRef::Binary(payload),
                    Data::Ping => MessageRef::Ping(payload),
                    Data::Pong => MessageRef::Pong(payload),
                })
            }
        };
        Ok(InPlace { consumed, message })
    }

    /// Whether a fragmented message is in progress.
    pub fn in_message(&self) -> bool {
        self.fragmented.is_some()
    }

    /// [`decode_frames`](Self::decode_frames), starting afresh after an error: errors are
    /// final, and the partial message's memory goes back at once.
    #[inline]
    fn decode_frames_or_reset(&mut self, buf: &mut [u8]) -> Result<Step, ProtocolError> {
        let result = self.decode_frames(buf);
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Parses a close frame's payload, starting afresh if it is invalid.
    fn close_or_reset<'p>(
        &mut self,
        payload: &'p [u8],
    ) -> Result<Option<CloseRef<'p>>, ProtocolError> {
        let result = CloseRef::parse(payload);
        if result.is_err() {
            self.reset();
        }
        result
    }

    #[cold]
    fn reset(&mut self) {
        *self = Self::new(self.cfg);
    }

    /// The decoding loop behind both ways out: processes the frames at the front of `buf`
    /// until one completes a message or one is incomplete.
    #[inline]
    fn decode_frames(&mut self, buf: &mut [u8]) -> Result<Step, ProtocolError> {
        if self.lent {
            self.lent = false;
            self.message = Vec::new();
        }
        let mut at = 0;
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            let Some(header) = FrameHeader::parse(rest)? else {
                return Ok(Step {
                    consumed: at,
                    completed: None,
                });
            };
            let len = self.check_header(&header)?;
            let text = self.is_text(header.opcode);
            let Some(total) = header.header_len.checked_add(len) else {
                return Err(self.frame_too_large(&header));
            };
            if rest.len() < total {
                if text {
                    let partial = rest.get(header.header_len..).unwrap_or_default();
                    self.check_partial_text(partial, header.mask)?;
                }
                return Ok(Step {
                    consumed: at,
                    completed: None,
                });
            }
            // Unmask and read the payload where it lies.
            let start = at + header.header_len;
            at += total;
            let payload = buf.get_mut(start..at).unwrap_or_default();
            if let Some(completed) = self.complete_frame(&header, text, payload, start)? {
                return Ok(Step {
                    consumed: at,
                    completed: Some(completed),
                });
            }
        }
    }

    /// Handles a frame whose payload, at `start` in the caller's buffer, has fully arrived;
    /// `None` for a non-final fragment, whose payload joins the message buffer.
    #[inline]
    fn complete_frame(
        &mut self,
        header: &FrameHeader,
        text: bool,
        payload: &mut [u8],
        start: usize,
    ) -> Result<Option<Completed>, ProtocolError> {
        if let Some(key) = header.mask {
            apply_mask(payload, key);
        }
        let checked = std::mem::take(&mut self.checked).min(payload.len());
        if text {
            let unchecked = payload.get(checked..).unwrap_or_default();
            self.utf8
                .feed(unchecked)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        let payload: &[u8] = payload;
        let frame = Payload::Frame { start };
        let kind = match header.opcode {
            Opcode::Ping => return Ok(Some(Completed::Data(Data::Ping, frame))),
            Opcode::Pong => return Ok(Some(Completed::Data(Data::Pong, frame))),
            Opcode::Close => return Ok(Some(Completed::Close { start })),
            Opcode::Text => Kind::Text,
            Opcode::Binary => Kind::Binary,
            // `check_header` refused a continuation with no message in progress.
            Opcode::Continuation => self.fragmented.unwrap_or(Kind::Binary),
        };
        if !header.fin {
            // "A fragmented message consists of a single frame with the FIN bit clear and an
            // opcode other than 0, followed by zero or more frames with the FIN bit clear and
            // the opcode set to 0, and terminated by a single frame with the FIN bit set and an
            // opcode of 0."
            self.fragmented = Some(kind);
            self.message.extend_from_slice(payload);
            return Ok(None);
        }
        let payload = if self.fragmented.take().is_some() {
            self.message.extend_from_slice(payload);
            Payload::Assembled
        } else {
            frame
        };
        let data = match kind {
            Kind::Text => {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                Data::Text
            }
            Kind::Binary => Data::Binary,
        };
        Ok(Some(Completed::Data(data, payload)))
    }

    /// Applies the rules that depend on the connection; returns the payload length.
    #[inline]
    fn check_header(&self, header: &FrameHeader) -> Result<usize, ProtocolError> {
        match (header.mask.is_some(), self.cfg.require_mask) {
            // Section 5.1: "The server MUST close the connection upon receiving a frame that is
            // not masked."
            (false, true) => return Err(ProtocolError::Unmasked),
            // Section 5.1: "A client MUST close a connection if it detects a masked frame."
            (true, false) => return Err(ProtocolError::UnexpectedMask),
            _ => {}
        }
        match (header.opcode, self.fragmented) {
            // Section 5.4: the continuation frames of a message follow its first frame, and
            // "the fragments of one message MUST NOT be interleaved between the fragments of
            // another message".
            (Opcode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        let len = match usize::try_from(header.payload_len) {
            Ok(len) if len <= self.cfg.max_frame_size => len,
            _ => return Err(self.frame_too_large(header)),
        };
        if !header.opcode.is_control()
            && self.message.len().saturating_add(len) > self.cfg.max_message_size
        {
            return Err(ProtocolError::MessageTooLarge {
                max: self.cfg.max_message_size,
            });
        }
        Ok(len)
    }

    #[inline]
    fn frame_too_large(&self, header: &FrameHeader) -> ProtocolError {
        ProtocolError::FrameTooLarge {
            len: header.payload_len,
            max: self.cfg.max_frame_size,
        }
    }

    /// Whether a frame with `opcode` carries text in the current state.
    #[inline]
    fn is_text(&self, opcode: Opcode) -> bool {
        match opcode {
            Opcode::Text => true,
            Opcode::Continuation => self.fragmented == Some(Kind::Text),
            _ => false,
        }
    }

    /// Validates the newly arrived part of an incomplete text frame without consuming it: the
    /// bytes are unmasked into a stack buffer, and `checked` remembers how far validation got so
    /// each byte is checked once.
    fn check_partial_text(
        &mut self,
        partial: &[u8],
        mask: Option<[u8; 4]>,
    ) -> Result<(), ProtocolError> {
        let mut chunk = [0u8; PEEK_CHUNK];
        while let Some(rest) = partial.get(self.checked..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(PEEK_CHUNK);
            let piece = &mut chunk[..n];
            piece.copy_from_slice(&rest[..n]);
            if let Some(key) = mask {
                apply_mask(piece, key_at(key, self.checked));
            }
            self.utf8
                .feed(piece)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            self.checked += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
