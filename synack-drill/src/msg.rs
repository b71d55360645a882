//! send(2) family arguments as scripts write them: the flags word (`MSG_MORE|MSG_EOR`)
//! and the length of a sendmsg() msghdr (`{msg_name(...)=..., msg_iov(2)=[{..., 100},
//! {..., 200}], msg_flags=0}`), for the drill and the packetdrill library alike.

use synack::SendFlags;

/// MSG_EOR and MSG_MORE as Linux numbers them (include/linux/socket.h).
pub const MSG_EOR: i64 = 0x80;
/// See [`MSG_EOR`].
pub const MSG_MORE: i64 = 0x8000;

/// The send flags named in a script's flags argument (`0`, `MSG_MORE`, `MSG_EOR|MSG_MORE`,
/// or a number); flags synack does not model are ignored.
pub fn send_flags(arg: &str) -> SendFlags {
    let bits = arg.split('|').map(str::trim).fold(0i64, |bits, f| {
        bits | match f {
            "MSG_MORE" => MSG_MORE,
            "MSG_EOR" => MSG_EOR,
            n => crate::args::integer(n).unwrap_or(0),
        }
    });
    flags_from_bits(bits)
}

/// The send flags in a flags word.
pub fn flags_from_bits(bits: i64) -> SendFlags {
    SendFlags {
        more: bits & MSG_MORE != 0,
        eor: bits & MSG_EOR != 0,
    }
}

/// The bytes a sendmsg() msghdr's iovecs hold.
pub fn msghdr_len(arg: &str) -> usize {
    crate::args::iov_len(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_words_name_more_and_eor() {
        assert_eq!(send_flags("0"), SendFlags::default());
        let both = send_flags("MSG_EOR|MSG_MORE");
        assert!(both.more && both.eor);
        assert!(send_flags("MSG_MORE").more && !send_flags("MSG_MORE").eor);
    }

    #[test]
    fn a_msghdr_holds_the_sum_of_its_iovecs() {
        let m = "{msg_name(...)=..., msg_iov(3)=[{..., 100}, {..., 200}, {..., 195}], msg_flags=0}";
        assert_eq!(msghdr_len(m), 495);
    }
}
