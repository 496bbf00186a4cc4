//! Decoder tests: the RFC 6455 accept and reject table, incremental feeding, limits, fail-fast
//! UTF-8, and a randomised check that chunking never changes the outcome.

use super::*;
use crate::ws::encode;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `b0` is the first byte (FIN, RSV, opcode) as sent.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = encode::frame(Opcode::Binary, payload).to_vec();
    let header_len = encode::header_len(payload.len());
    out[0] = b0;
    out[1] |= 0x80;
    out.splice(header_len..header_len, KEY);
    apply_mask(&mut out[header_len + 4..], KEY);
    out
}

fn server(max: usize) -> Decoder {
    Decoder::new(DecoderConfig {
        max_frame_size: max,
        max_message_size: max,
        require_mask: true,
    })
}

/// Decodes everything in `bytes` at once: the messages, then `Err` or the `Ok(None)` end.
fn decode_all(d: &mut Decoder, bytes: &[u8]) -> (Vec<Message>, Result<(), ProtocolError>) {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match d.decode(&mut buf) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Decodes `pieces` one after the other with `decode_in_place`, as a client with a plain
/// `Vec` read buffer does: the consumed bytes are dropped after each call.
fn decode_all_in_place(
    d: &mut Decoder,
    pieces: &[&[u8]],
) -> (Vec<Message>, Result<(), ProtocolError>) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match d.decode_in_place(&mut buf) {
                Ok(InPlace { consumed, message }) => {
                    let message = message.map(|m| m.to_message());
                    buf.drain(..consumed);
                    match message {
                        Some(m) => out.push(m),
                        None => break,
                    }
                }
                Err(e) => return (out, Err(e)),
            }
        }
    }
    (out, Ok(()))
}

fn one(bytes: &[u8]) -> Result<Message, ProtocolError> {
    let (mut msgs, end) = decode_all(&mut server(10_000), bytes);
    end?;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    Ok(msgs.remove(0))
}

#[test]
fn rfc_6455_section_5_7_examples() {
    let hello = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(one(&hello), Ok(Message::Text(b"Hello".to_vec())));
    assert_eq!(masked(0x81, b"Hello"), hello);
    let mut client = Decoder::new(DecoderConfig::client(&Limits::default()));
    let fragments = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    let (msgs, end) = decode_all(&mut client, &fragments);
    assert_eq!(
        (msgs, end),
        (vec![Message::Text(b"Hello".to_vec())], Ok(()))
    );
    let ping = [
        0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(one(&ping), Ok(Message::Ping(b"Hello".to_vec())));
    assert_eq!(one(&masked(0x8A, b"")), Ok(Message::Pong(Vec::new())));
    let big = vec![0x5a; 65536];
    let (msgs, _) = decode_all(&mut server(70_000), &masked(0x82, &big));
    assert_eq!(msgs, vec![Message::Binary(big)]);
    assert_eq!(
        one(&masked(0x82, &[1; 256])),
        Ok(Message::Binary(vec![1; 256]))
    );
}

#[test]
fn rejections() {
    use ProtocolError::*;
    let mut too_big_header = masked(0x82, &[0; 126])[..8].to_vec();
    too_big_header[2..4].copy_from_slice(&10_001u16.to_be_bytes());
    let cases: Vec<(Vec<u8>, ProtocolError, u16)> = vec![
        (vec![0x81, 0x00], Unmasked, 1002),
        (masked(0xC1, b"x"), ReservedBits, 1002),
        (masked(0x84, b""), ReservedOpcode(4), 1002),
        (masked(0x8C, b""), ReservedOpcode(0xC), 1002),
        (masked(0x09, b""), FragmentedControl, 1002),
        (masked(0x89, &[0; 126]), ControlTooLong, 1002),
        (masked(0x80, b"x"), UnexpectedContinuation, 1002),
        (
            [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
            ExpectedContinuation,
            1002,
        ),
        (
            [masked(0x02, b"a"), masked(0x82, b"b")].concat(),
            ExpectedContinuation,
            1002,
        ),
        (
            vec![0x82, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0],
            LengthOverflow,
            1002,
        ),
        (
            too_big_header,
            FrameTooLarge {
                len: 10_001,
                max: 10_000,
            },
            1009,
        ),
        (masked(0x81, b"a\xffb"), InvalidUtf8, 1007),
        (masked(0x81, b"\xe2\x82"), InvalidUtf8, 1007),
        (masked(0x88, &[3]), InvalidClosePayload, 1002),
        (
            masked(0x88, &1006u16.to_be_bytes()),
            InvalidCloseCode(1006),
            1002,
        ),
        (masked(0x88, b"\x03\xe8\xc0\xaf"), InvalidUtf8, 1007),
    ];
    for (bytes, err, code) in cases {
        let (_, end) = decode_all(&mut server(10_000), &bytes);
        assert_eq!(end, Err(err.clone()), "{bytes:x?}");
        assert_eq!(err.close_code(), code);
    }
    let mut client = Decoder::new(DecoderConfig::client(&Limits::default()));
    assert_eq!(
        decode_all(&mut client, &masked(0x81, b"")).1,
        Err(UnexpectedMask)
    );
}

#[test]
fn incomplete_frames_are_left_untouched() {
    let frame = masked(0x81, "héllo".as_bytes());
    let mut d = server(100);
    for end in 0..frame.len() {
        let mut buf = BytesMut::from(&frame[..end]);
        assert_eq!(d.decode(&mut buf), Ok(None), "{end}");
        assert_eq!(&buf[..], &frame[..end]);
    }
    let mut buf = BytesMut::from(&[frame.clone(), masked(0x82, b"x"), vec![0x81]].concat()[..]);
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Text("héllo".into()))));
    assert_eq!(d.decode(&mut buf), Ok(Some(Message::Binary(b"x".to_vec()))));
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], &[0x81]);
}

#[test]
fn control_frames_between_fragments_are_returned_at_once() {
    let stream = [
        masked(0x01, b"fra"),
        masked(0x89, b"p"),
        masked(0x00, b""),
        masked(0x8A, b""),
        masked(0x00, "gmé".as_bytes()),
        masked(0x88, &1000u16.to_be_bytes()),
        masked(0x80, b"nt"),
    ]
    .concat();
    let mut d = server(100);
    let (msgs, end) = decode_all(&mut d, &stream);
    assert_eq!(end, Ok(()));
    assert_eq!(
        msgs,
        vec![
            Message::Ping(b"p".to_vec()),
            Message::Pong(Vec::new()),
            Message::Close(Some(CloseFrame {
                code: crate::ws::close::CloseCode::NORMAL,
                reason: String::new(),
            })),
            Message::Text("fragmént".into()),
        ]
    );
    assert!(!d.in_message());
    assert_eq!(d.message.capacity(), 0, "the message buffer is released");
}

#[test]
fn limits_are_checked_from_the_header_before_the_payload() {
    // Only the header of a too-large frame has arrived.
    let header = &masked(0x82, &[0; 101])[..8];
    assert_eq!(
        server(100).decode(&mut BytesMut::from(header)),
        Err(ProtocolError::FrameTooLarge { len: 101, max: 100 })
    );
    // Fragments under the frame limit that add up to more than the message limit.
    let mut d = Decoder::new(DecoderConfig {
        max_frame_size: 100,
        max_message_size: 150,
        require_mask: true,
    });
    let mut buf = BytesMut::from(
        &[
            masked(0x02, &[0; 100]),
            masked(0x00, &[0; 51])[..6].to_vec(),
        ]
        .concat()[..],
    );
    assert_eq!(
        d.decode(&mut buf),
        Err(ProtocolError::MessageTooLarge { max: 150 })
    );
    assert_eq!(
        d.message.capacity(),
        0,
        "an error drops the partial message"
    );
    // Exactly at the limits is fine, and control frames do not count towards a message.
    let stream = [
        masked(0x02, &[0; 100]),
        masked(0x89, b"ping"),
        masked(0x80, &[0; 50]),
    ]
    .concat();
    assert_eq!(decode_all(&mut d, &stream).1, Ok(()));
}

#[test]
fn invalid_utf8_fails_fast() {
    // Autobahn 6.4.1/6.4.2: a valid first fragment, then one that makes the text invalid,
    // before the final fragment arrives.
    let mut d = server(1000);
    let mut buf = BytesMut::from(&masked(0x01, "κόσμε".as_bytes())[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&masked(0x00, b"\xf4\x90\x80\x80"));
    assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
    // Autobahn 6.4.3/6.4.4: one frame, arriving in chops; the bad chop fails at once.
    let frame = masked(
        0x81,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
    );
    let mut d = server(1000);
    let mut buf = BytesMut::from(&frame[..6 + 11]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&frame[6 + 11..6 + 13]);
    assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
    // A truncated character at the end of a fragmented text.
    let stream = [masked(0x01, b"ok"), masked(0x80, b"\xe2\x82")].concat();
    assert_eq!(
        decode_all(&mut server(100), &stream).1,
        Err(ProtocolError::InvalidUtf8)
    );
    // Binary messages are not text.
    assert_eq!(one(&masked(0x82, b"\xff")), Ok(Message::Binary(vec![0xff])));
}

#[test]
fn text_split_anywhere_and_fed_byte_by_byte_is_accepted() {
    let text = "aé€😀z".as_bytes();
    for cut in 0..=text.len() {
        let stream = [masked(0x01, &text[..cut]), masked(0x80, &text[cut..])].concat();
        let mut d = server(100);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in &stream {
            buf.extend_from_slice(&[b]);
            if let Some(m) = d.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![Message::Text(text.to_vec())], "cut {cut}");
    }
}

/// What a server sends, as a client decodes it: unmasked frames from the server encoder,
/// with a fragmented message (a ping between its fragments), text over 125 bytes and a close.
fn server_stream() -> Vec<u8> {
    [
        encode::text(b"hello").to_vec(),
        encode::frame(Opcode::Ping, b"p").to_vec(),
        vec![0x01, 3, b'a', b'b', 0xc3],
        encode::frame(Opcode::Pong, b"").to_vec(),
        vec![0x80, 3, 0xa9, b'd', b'e'],
        encode::text(&[b'x'; 300]).to_vec(),
        encode::frame(Opcode::Binary, &[0, 1, 2]).to_vec(),
        encode::close(4100, "Over capacity").to_vec(),
    ]
    .concat()
}

#[test]
fn in_place_agrees_with_owned_decoding_split_anywhere() {
    let client = || Decoder::new(DecoderConfig::client(&Limits::default()));
    let wire = server_stream();
    let (whole, end) = decode_all(&mut client(), &wire);
    assert_eq!(end, Ok(()));
    assert_eq!(whole.len(), 7, "{whole:?}");
    assert_eq!(whole[3], Message::Text("abéde".into()));
    for split in 1..wire.len() {
        let pieces: Vec<&[u8]> = wire.chunks(split).collect();
        assert_eq!(
            decode_all_in_place(&mut client(), &pieces),
            (whole.clone(), Ok(())),
            "split {split}"
        );
    }
    // A server decoding masked frames in place unmasks them where they lie.
    let stream = [masked(0x01, b"fra"), masked(0x89, b"p"), masked(0x80, b"g")].concat();
    for split in 1..stream.len() {
        let pieces: Vec<&[u8]> = stream.chunks(split).collect();
        assert_eq!(
            decode_all_in_place(&mut server(100), &pieces),
            decode_all(&mut server(100), &stream),
            "split {split}"
        );
    }
}

#[test]
fn in_place_borrows_the_payload_and_releases_a_lent_message() {
    let mut d = Decoder::new(DecoderConfig::client(&Limits::default()));
    let mut buf = [encode::text(b"one").to_vec(), vec![0x01, 1, b't']].concat();
    let start = buf.as_ptr() as usize;
    let InPlace { consumed, message } = d.decode_in_place(&mut buf).unwrap();
    let Some(MessageRef::Text(text)) = message else {
        panic!("{message:?}");
    };
    assert_eq!(text, b"one");
    assert_eq!(
        text.as_ptr() as usize,
        start + 2,
        "the payload is not copied"
    );
    assert_eq!(consumed, 5);
    // The first fragment is consumed into the decoder; the message is not complete yet.
    let mut rest = buf[consumed..].to_vec();
    let step = d.decode_in_place(&mut rest).unwrap();
    assert_eq!((step.consumed, step.message), (3, None));
    assert!(d.in_message());
    let mut last = vec![0x80, 2, b'w', b'o'];
    let step = d.decode_in_place(&mut last).unwrap();
    assert_eq!(
        (step.consumed, step.message),
        (4, Some(MessageRef::Text(b"two")))
    );
    assert!(d.lent && d.message.capacity() > 0);
    // The next call takes the lent message back and frees it, whatever it then finds.
    assert_eq!(d.decode_in_place(&mut []).unwrap().message, None);
    assert_eq!((d.lent, d.message.capacity()), (false, 0));
}

#[test]
fn idle_decoder_is_small() {
    assert!(std::mem::size_of::<Decoder>() <= 64);
    let d = server(100);
    assert_eq!(d.message.capacity(), 0);
}

/// Random streams of plausible and broken frames, decoded all at once and in random
/// chunks: never a panic, and the same messages and the same error either way.
#[test]
fn chunking_never_changes_the_outcome_and_nothing_panics() {
    let mut seed = 0x853c_49e6_748f_ea9b_u64;
    let mut rng = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let b0s = [
        0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x89, 0x8A, 0x88, 0xC1, 0x83, 0x09,
    ];
    let payloads: [&[u8]; 8] = [
        b"",
        b"hi",
        "é€".as_bytes(),
        b"\xe2",
        b"\x82\xac",
        b"\xff",
        b"\x03\xe8ok",
        &[7; 130],
    ];
    for _ in 0..3000 {
        let mut stream = Vec::new();
        for _ in 0..rng() % 6 {
            let b0 = b0s[rng() as usize % b0s.len()];
            stream.extend(masked(b0, payloads[rng() as usize % payloads.len()]));
        }
        for _ in 0..rng() % 3 {
            if !stream.is_empty() {
                let i = rng() as usize % stream.len();
                stream[i] = rng() as u8;
            }
        }
        let whole = decode_all(&mut server(120), &stream);
        let mut d = server(120);
        let mut buf = BytesMut::new();
        let (mut msgs, mut end) = (Vec::new(), Ok(()));
        let mut at = 0;
        'feed: while at < stream.len() {
            let n = 1 + rng() as usize % 9;
            let to = (at + n).min(stream.len());
            buf.extend_from_slice(&stream[at..to]);
            at = to;
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(m)) => msgs.push(m),
                    Ok(None) => break,
                    Err(e) => {
                        end = Err(e);
                        break 'feed;
                    }
                }
            }
        }
        assert_eq!((msgs, end), whole, "{stream:x?}");
        let pieces: Vec<&[u8]> = stream.chunks(1 + rng() as usize % 9).collect();
        assert_eq!(
            decode_all_in_place(&mut server(120), &pieces),
            whole,
            "in place: {stream:x?}"
        );
    }
}
