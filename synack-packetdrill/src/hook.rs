//! packetdrill answers `%{ }%` blocks by calling the real libc `getsockopt(fd, SOL_TCP,
//! TCP_INFO)` on the script's socket, not through the function table; with a library that
//! socket is ours (a /dev/null descriptor standing for a synack socket), so the kernel
//! would refuse. [`install`] points the main program's GOT entry for `getsockopt` at
//! [`hooked_getsockopt`], which answers for descriptors a live [`Instance`] owns and
//! passes every other call to the kernel unchanged (`syscall(SYS_getsockopt)`).
//!
//! packetdrill also calls the real `sendfile(2)` (not through the function table) with
//! the script's socket as the destination: [`hooked_sendfile`] takes that slot the same
//! way, reads the file's bytes itself and writes them to the synack socket.
//!
//! The walk is the dynamic linker's own data, read through `dl_iterate_phdr`: the main
//! program's PT_DYNAMIC gives its symbol and string tables and its RELA relocations
//! (DT_JMPREL for PLT slots, DT_RELA for GOT slots); a relocation whose symbol is named
//! `getsockopt` names the slot to rewrite. A slot inside PT_GNU_RELRO is made writable
//! for the write and read-only again after. A `plthook`-style crate is not used: the one
//! on crates.io is Apache-2.0, which this MIT library, loaded into GPLv2 packetdrill,
//! cannot take.

use std::ffi::CStr;
use std::sync::{Mutex, OnceLock};

use libc::{c_int, c_void, socklen_t};

use crate::Instance;

/// ELF's `Elf64_Dyn` (elf.h): a tag and an address or value.
#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

/// ELF's `Elf64_Rela` (elf.h).
#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_STRSZ: i64 = 10;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;

/// Relocation types that fill a slot with a function's address: JUMP_SLOT and GLOB_DAT.
#[cfg(target_arch = "x86_64")]
const SLOT_RELOCS: [u32; 2] = [7, 6];
#[cfg(target_arch = "aarch64")]
const SLOT_RELOCS: [u32; 2] = [1026, 1025];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SLOT_RELOCS: [u32; 0] = [];

/// The signature of getsockopt(2).
type GetsockoptFn = unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
/// The signature of sendfile(2).
type SendfileFn =
    unsafe extern "C" fn(c_int, c_int, *mut libc::off_t, libc::size_t) -> libc::ssize_t;

/// The hook for a symbol the main program calls through a slot, by name.
fn hook_for(name: &[u8]) -> Option<usize> {
    match name {
        b"getsockopt" => {
            let f: GetsockoptFn = hooked_getsockopt;
            Some(f as usize)
        }
        b"sendfile" | b"sendfile64" => {
            let f: SendfileFn = hooked_sendfile;
            Some(f as usize)
        }
        _ => None,
    }
}

/// The live instances (as addresses), so the hook can find the one owning a descriptor.
/// Held while an instance answers, so `unregister` cannot free it meanwhile.
static INSTANCES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Let the hook answer for `instance`'s descriptors until [`unregister`].
pub fn register(instance: *const Instance) {
    if let Ok(mut v) = INSTANCES.lock() {
        v.push(instance as usize);
    }
}

/// Stop answering for `instance`, before it is freed.
pub fn unregister(instance: *const Instance) {
    if let Ok(mut v) = INSTANCES.lock() {
        v.retain(|&p| p != instance as usize);
    }
}

/// Rewrite the main program's `getsockopt` slots to [`hooked_getsockopt`], once per
/// process. Returns how many slots point at the hook (0: the program does not call
/// getsockopt through a slot, e.g. it is linked statically).
pub fn install() -> usize {
    static SLOTS: OnceLock<usize> = OnceLock::new();
    *SLOTS.get_or_init(|| {
        let mut found = 0usize;
        // SAFETY: dl_iterate_phdr calls `each_object` with valid dl_phdr_info pointers and
        // passes back our `found` pointer, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(each_object), (&mut found as *mut usize).cast()) };
        found
    })
}

/// dl_iterate_phdr's callback: the first object is the main program; patch it and stop.
unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut c_void,
) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, whose
    // dlpi_phdr points to dlpi_phnum program headers of a loaded object.
    let (base, phdrs) = unsafe {
        let info = &*info;
        (
            info.dlpi_addr as usize,
            std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)),
        )
    };
    // SAFETY: the program headers, base and data are those of a loaded object, as above.
    let patched = unsafe { patch_object(base, phdrs) };
    // SAFETY: `data` is the &mut usize `install` passed.
    unsafe { *data.cast::<usize>() = patched };
    1 // the main program only
}

/// An address the dynamic section gives: glibc has already relocated it to absolute,
/// other loaders leave it relative to the object's base.
fn dyn_addr(base: usize, val: u64) -> usize {
    let v = val as usize;
    if v < base {
        base.wrapping_add(v)
    } else {
        v
    }
}

/// Point every `getsockopt` slot of one object at the hook; how many were.
///
/// # Safety
/// `base` and `phdrs` are a loaded object's (from dl_iterate_phdr).
unsafe fn patch_object(base: usize, phdrs: &[libc::Elf64_Phdr]) -> usize {
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC) else {
        return 0;
    };
    let relro = phdrs
        .iter()
        .find(|p| p.p_type == libc::PT_GNU_RELRO)
        .map(|p| {
            let start = base + p.p_vaddr as usize;
            start..start + p.p_memsz as usize
        });
    let (mut strtab, mut strsz, mut symtab) = (0usize, 0usize, 0usize);
    let (mut jmprel, mut pltrelsz, mut pltrel_is_rela) = (0usize, 0usize, true);
    let (mut rela, mut relasz) = (0usize, 0usize);
    let mut d = (base + dynamic.p_vaddr as usize) as *const Dyn;
    loop {
        // SAFETY: PT_DYNAMIC is an array of Dyn ended by DT_NULL, mapped while loaded.
        let e = unsafe { &*d };
        match e.tag {
            DT_NULL => break,
            DT_STRTAB => strtab = dyn_addr(base, e.val),
            DT_STRSZ => strsz = e.val as usize,
            DT_SYMTAB => symtab = dyn_addr(base, e.val),
            DT_JMPREL => jmprel = dyn_addr(base, e.val),
            DT_PLTRELSZ => pltrelsz = e.val as usize,
            DT_PLTREL => pltrel_is_rela = e.val == DT_RELA as u64,
            DT_RELA => rela = dyn_addr(base, e.val),
            DT_RELASZ => relasz = e.val as usize,
            _ => {}
        }
        // SAFETY: not past DT_NULL, which ends the array.
        d = unsafe { d.add(1) };
    }
    if strtab == 0 || symtab == 0 || !pltrel_is_rela {
        return 0;
    }
    let mut patched = 0;
    for (table, size) in [(jmprel, pltrelsz), (rela, relasz)] {
        if table == 0 {
            continue;
        }
        // SAFETY: DT_JMPREL / DT_RELA point to `size` bytes of Rela entries, mapped.
        let relocs =
            unsafe { std::slice::from_raw_parts(table as *const Rela, size / size_of::<Rela>()) };
        for r in relocs {
            let (sym, ty) = ((r.info >> 32) as usize, (r.info & 0xffff_ffff) as u32);
            if sym == 0 || !SLOT_RELOCS.contains(&ty) {
                continue;
            }
            // SAFETY: a relocation's symbol index is within DT_SYMTAB, whose entries
            // name offsets within DT_STRTAB of NUL-terminated strings.
            let name = unsafe {
                let s = &*(symtab as *const libc::Elf64_Sym).add(sym);
                if strsz != 0 && s.st_name as usize >= strsz {
                    continue;
                }
                CStr::from_ptr((strtab + s.st_name as usize) as *const libc::c_char)
            };
            let Some(hook) = hook_for(name.to_bytes()) else {
                continue;
            };
            let slot = base + r.offset as usize;
            let protected = relro.as_ref().is_some_and(|z| z.contains(&slot));
            // SAFETY: the relocation names a pointer-sized slot of this object, written by
            // the dynamic linker; in RELRO it is made writable for the write.
            if unsafe { write_slot(slot, protected, hook) } {
                patched += 1;
            }
        }
    }
    patched
}

/// Store a hook's address in one slot; `protected`: the slot lies in RELRO.
///
/// # Safety
/// `slot` is an aligned, mapped function-pointer slot of a loaded object, and `hook` the
/// address of a function of the signature the slot's symbol has.
unsafe fn write_slot(slot: usize, protected: bool, hook: usize) -> bool {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    let start = (slot & !(page - 1)) as *mut c_void;
    let len = slot + size_of::<usize>() - (slot & !(page - 1));
    // SAFETY: making the slot's own pages (part of the object, mapped) writable.
    if protected && unsafe { libc::mprotect(start, len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
        return false;
    }
    // SAFETY: the slot is mapped, aligned and now writable; callers load it whole.
    unsafe { (slot as *mut usize).write_volatile(hook) };
    if protected {
        // SAFETY: back to RELRO's read-only, as the dynamic linker left it.
        unsafe { libc::mprotect(start, len, libc::PROT_READ) };
    }
    true
}

/// getsockopt(2) as the main program now calls it: a live instance's descriptor gets the
/// library's answer (see `ffi::getsockopt`), any other goes to the kernel.
///
/// # Safety
/// getsockopt(2)'s contract.
pub unsafe extern "C" fn hooked_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    if let Ok(live) = INSTANCES.lock() {
        for &p in live.iter() {
            // SAFETY: registered instances stay alive until unregistered, which waits for
            // this lock.
            let inst = unsafe { &*(p as *const Instance) };
            if inst.with(|st| st.socks.owns(fd)) {
                // SAFETY: our own instance pointer and the caller's getsockopt arguments.
                return unsafe {
                    crate::ffi::getsockopt(p as *mut c_void, fd, level, name, val, len)
                };
            }
        }
    }
    // SAFETY: the raw system call with the caller's arguments, as libc's wrapper makes it.
    unsafe { libc::syscall(libc::SYS_getsockopt, fd, level, name, val, len) as c_int }
}

/// sendfile(2) as the main program now calls it: to a live instance's socket, the bytes
/// are read from `in_fd` here (from `*offset`, which moves, or from the file position)
/// and written to the synack socket as one write (blocking as the socket says); any
/// other call goes to the kernel.
///
/// # Safety
/// sendfile(2)'s contract.
pub unsafe extern "C" fn hooked_sendfile(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut libc::off_t,
    count: libc::size_t,
) -> libc::ssize_t {
    if let Ok(live) = INSTANCES.lock() {
        for &p in live.iter() {
            // SAFETY: registered instances stay alive until unregistered, which waits for
            // this lock.
            let inst = unsafe { &*(p as *const Instance) };
            if inst.with(|st| st.socks.owns(out_fd)) {
                // SAFETY: the caller's sendfile arguments.
                return unsafe { sendfile_to(inst, out_fd, in_fd, offset, count) };
            }
        }
    }
    // SAFETY: the raw system call with the caller's arguments, as libc's wrapper makes it.
    unsafe { libc::syscall(libc::SYS_sendfile, out_fd, in_fd, offset, count) as libc::ssize_t }
}

/// [`hooked_sendfile`] to one of `inst`'s sockets.
///
/// # Safety
/// sendfile(2)'s contract: `offset` is null or points to an off_t.
unsafe fn sendfile_to(
    inst: &Instance,
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut libc::off_t,
    count: libc::size_t,
) -> libc::ssize_t {
    // Linux caps one sendfile at MAX_RW_COUNT; a smaller cap keeps the buffer small.
    let mut buf = vec![0u8; count.min(1 << 24)];
    let got = if offset.is_null() {
        // SAFETY: `buf` is writable for its length.
        unsafe { libc::read(in_fd, buf.as_mut_ptr().cast(), buf.len()) }
    } else {
        // SAFETY: as above; `offset` points to an off_t (caller's promise).
        unsafe { libc::pread(in_fd, buf.as_mut_ptr().cast(), buf.len(), *offset) }
    };
    if got <= 0 {
        return got;
    }
    let data = &buf[..got as usize];
    let sent = crate::ffi::write_to(inst, out_fd, data);
    let unsent = if sent < 0 { got } else { got - sent };
    if offset.is_null() {
        if unsent > 0 {
            // Give back what the socket did not take.
            // SAFETY: lseek on the caller's descriptor, moving back over bytes read.
            unsafe { libc::lseek(in_fd, -(unsent as libc::off_t), libc::SEEK_CUR) };
        }
    } else if sent > 0 {
        // SAFETY: as above.
        unsafe { *offset += sent as libc::off_t };
    }
    sent
}
