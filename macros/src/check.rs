//! Check 1: the syntactic rejection of field types that cannot live in shared memory.

use syn::{GenericArgument, PathArguments, ReturnType, Type, TypePath};

/// What a std type that cannot live in a segment should be replaced with.
fn std_replacement(name: &str) -> Option<&'static str> {
    Some(match name {
        "Box" => "the segment `Box` (shmkit containers) or an `OffsetPtr<T>` to a value allocated in the segment",
        "Vec" => "the segment `Vec` (shmkit containers), or a fixed-size array `[T; N]`",
        "String" => "the segment `String` (shmkit containers), or a fixed-size `[u8; N]` buffer",
        "Rc" | "Arc" => "the segment `Arc` (shmkit containers), or an `OffsetPtr<T>`",
        "Weak" => "the segment `Weak` (shmkit containers)",
        "HashMap" => "the segment `HashMap` (shmkit containers)",
        "HashSet" | "BTreeSet" => "the segment `Set` (shmkit containers)",
        "BTreeMap" => "the segment `Map` (shmkit containers)",
        "LinkedList" => "the segment `List` (shmkit containers)",
        "VecDeque" => "the segment `Deque` (shmkit containers)",
        "BinaryHeap" => "the segment `Vec` (shmkit containers) kept as a heap",
        "Cell" | "RefCell" | "UnsafeCell" | "OnceCell" => {
            "atomics (`AtomicU32`, `AtomicU64`, …) or the segment's robust `Mutex` (shmkit sync)"
        }
        "Mutex" | "RwLock" | "Condvar" | "Barrier" | "Once" | "OnceLock" | "LazyLock" => {
            "the segment's process-shared robust `Mutex`/`RwLock`/`Condvar` (shmkit sync); std's only work within one process"
        }
        "NonNull" => "`OffsetPtr<T>` (a self-relative pointer into the segment)",
        "CString" | "OsString" | "PathBuf" => "the segment `String` (shmkit containers)",
        "File" | "TcpStream" | "TcpListener" | "UdpSocket" | "Thread" | "JoinHandle" => {
            "an identifier the processes agree on (a path, a port number): OS handles are per process"
        }
        _ => return None,
    })
}

fn is_std_root(seg: &str) -> bool {
    matches!(seg, "std" | "core" | "alloc")
}

/// The std type a path names, if any: a bare name (`Vec<u8>`) or one under `std`/`core`/
/// `alloc` (`std::sync::Mutex<u8>`).
pub fn std_type(p: &TypePath) -> Option<(String, &'static str)> {
    if p.qself.is_some() {
        return None;
    }
    let segs = &p.path.segments;
    let last = segs.last()?;
    let name = last.ident.to_string();
    let bare = segs.len() == 1 && p.path.leading_colon.is_none();
    let under_std = segs.len() > 1 && is_std_root(&segs[0].ident.to_string());
    if bare || under_std {
        std_replacement(&name).map(|r| (name, r))
    } else {
        None
    }
}

/// Check 1 on one field type: every construct that cannot live in a segment, with the
/// replacement to use, spanned on the construct.
pub fn check_type(ty: &Type, errors: &mut Vec<syn::Error>) {
    // `new_spanned` spans the whole construct (first to last token), also on stable.
    fn err(tokens: &dyn quote::ToTokens, msg: String) -> syn::Error {
        syn::Error::new_spanned(tokens, msg)
    }
    match ty {
        Type::Reference(r) => errors.push(err(
            r,
            "references cannot live in shared memory: another process maps the segment at \
             another address, and the referent may not be in it at all; use `shmkit::OffsetPtr<T>` \
             (a self-relative pointer into the same segment)"
                .into(),
        )),
        Type::Ptr(p) => errors.push(err(
            p,
            "raw pointers cannot live in shared memory: an address is only meaningful in the \
             process that took it; use `shmkit::OffsetPtr<T>` (#[shm_segment] rewrites `*const T` \
             and `*mut T` into it)"
                .into(),
        )),
        Type::TraitObject(t) => errors.push(err(
            t,
            "trait objects (`dyn Trait`) cannot live in shared memory: their vtable pointer is \
             only valid in this process; use an enum with #[repr(u8)] over the concrete types"
                .into(),
        )),
        Type::BareFn(f) => errors.push(err(
            f,
            "function pointers cannot live in shared memory: code addresses differ between \
             processes; store an enum or an integer id and dispatch on it"
                .into(),
        )),
        Type::ImplTrait(t) => errors.push(err(
            t,
            "`impl Trait` cannot be a field type: a shared-memory type needs one concrete, \
             fixed layout"
                .into(),
        )),
        Type::Never(n) => errors.push(err(
            n,
            "`!` cannot be a field type of a shared-memory type".into(),
        )),
        Type::Infer(i) => errors.push(err(i, "`_` is not a field type".into())),
        Type::Macro(m) => errors.push(err(
            m,
            "a type macro cannot be checked here: write the type out".into(),
        )),
        Type::Slice(s) => errors.push(err(
            s,
            "a slice `[T]` has no fixed size: use a fixed-size array `[T; N]` or the segment `Vec`"
                .into(),
        )),
        Type::Array(a) => check_type(&a.elem, errors),
        Type::Tuple(t) => t.elems.iter().for_each(|e| check_type(e, errors)),
        Type::Paren(p) => check_type(&p.elem, errors),
        Type::Group(g) => check_type(&g.elem, errors),
        Type::Path(p) => {
            if let Some((name, replacement)) = std_type(p) {
                errors.push(err(
                    p,
                    format!(
                        "`{name}` cannot live in shared memory: it points into (or is tied to) \
                         this process only; use {replacement}"
                    ),
                ));
                return;
            }
            if let Some(q) = &p.qself {
                check_type(&q.ty, errors);
            }
            for seg in &p.path.segments {
                match &seg.arguments {
                    PathArguments::AngleBracketed(a) => {
                        for arg in &a.args {
                            if let GenericArgument::Type(t) = arg {
                                check_type(t, errors);
                            }
                        }
                    }
                    PathArguments::Parenthesized(a) => {
                        a.inputs.iter().for_each(|t| check_type(t, errors));
                        if let ReturnType::Type(_, t) = &a.output {
                            check_type(t, errors);
                        }
                    }
                    PathArguments::None => {}
                }
            }
        }
        _ => errors.push(err(
            ty,
            "this kind of type cannot be checked for shared memory".into(),
        )),
    }
}

/// Joins errors into one (each keeps its own span); Ok when there are none.
pub fn combine(errors: Vec<syn::Error>) -> syn::Result<()> {
    let mut it = errors.into_iter();
    match it.next() {
        None => Ok(()),
        Some(mut first) => {
            for e in it {
                first.combine(e);
            }
            Err(first)
        }
    }
}

/// A type as a short readable string for schema descriptions: `Vec<u8>`, not `Vec < u8 >`.
pub fn type_string(ty: &Type) -> String {
    let raw = quote::quote!(#ty).to_string();
    let mut out = String::with_capacity(raw.len());
    let chars: Vec<char> = raw.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let glue_after = matches!(prev, '<' | '(' | '[' | '&' | ':' | '*');
            let glue_before = matches!(next, '<' | '>' | ')' | ']' | ',' | ';' | ':');
            if glue_after || glue_before {
                continue;
            }
        }
        out.push(c);
    }
    out.trim_start_matches("::shmkit::")
        .replace("::shmkit::", "")
}
