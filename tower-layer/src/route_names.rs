//! Operation names of routes, built once per process.
//!
//! A route's operation name (`GET /users/{id}`) is the same string for
//! every request of the route. Built per request it costs an allocation, a
//! copy and, when a tracer reuses the span's memory, a free of memory long
//! out of the cache. Names are interned instead: a process-wide set of
//! leaked strings, at most [`MAX_NAMES`] of them (route templates are a
//! fixed set; past the bound, names are allocated per span as before),
//! found through a small per-thread cache so that requests share no lock.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use http::Method;

/// Most names interned in a process (about 64 KiB at 64 bytes a name).
pub(crate) const MAX_NAMES: usize = 1024;

/// Most names a thread's cache holds.
const THREAD_CACHE: usize = 64;

/// Names longer than this are not interned (a template this long is
/// unusual, and leaking it is not worth it).
const MAX_NAME_LEN: usize = 256;

static INTERNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// The set is full: names not in a thread's cache are built without taking
/// the lock.
static FULL: AtomicBool = AtomicBool::new(false);

/// A thread's names, and where the next one goes once it is full (in turn,
/// so a server with more routes than it holds still finds most names here).
struct ThreadCache {
    names: Vec<&'static str>,
    next: usize,
}

thread_local! {
    static CACHE: RefCell<ThreadCache> = const {
        RefCell::new(ThreadCache { names: Vec::new(), next: 0 })
    };
}

/// `"{method} {template}"`, interned when the bounds allow.
pub(crate) fn route_name(method: &Method, template: &str) -> Cow<'static, str> {
    let m = crate::request::operation_method(method);
    let len = m.len() + 1 + template.len();
    let matches = |name: &&'static str| {
        name.len() == len
            && name.as_bytes()[m.len()] == b' '
            && name.starts_with(m)
            && name.ends_with(template)
    };
    let cached = CACHE
        .try_with(|c| c.borrow().names.iter().find(|n| matches(n)).copied())
        .ok()
        .flatten();
    if let Some(name) = cached {
        return Cow::Borrowed(name);
    }
    let mut name = String::with_capacity(len);
    name.push_str(m);
    name.push(' ');
    name.push_str(template);
    match intern(name) {
        Ok(name) => {
            let _ = CACHE.try_with(|c| {
                let mut c = c.borrow_mut();
                if c.names.len() < THREAD_CACHE {
                    c.names.push(name);
                } else {
                    let at = c.next % THREAD_CACHE;
                    c.names[at] = name;
                    c.next = at + 1;
                }
            });
            Cow::Borrowed(name)
        }
        Err(name) => Cow::Owned(name),
    }
}

/// The interned copy of `name`, or `name` back when the set is full.
fn intern(name: String) -> Result<&'static str, String> {
    if name.len() > MAX_NAME_LEN || FULL.load(Ordering::Relaxed) {
        return Err(name);
    }
    let mut set = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    let set = set.get_or_insert_with(HashSet::new);
    if let Some(&found) = set.get(name.as_str()) {
        return Ok(found);
    }
    if set.len() >= MAX_NAMES {
        FULL.store(true, Ordering::Relaxed);
        return Err(name);
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    set.insert(leaked);
    Ok(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both borrowed, from the same interned string.
    fn same(x: Cow<'static, str>, y: Cow<'static, str>) -> bool {
        matches!((x, y), (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(x, y))
    }

    #[test]
    fn names_are_shared_and_exact() {
        let first = route_name(&Method::GET, "/users/{id}");
        assert_eq!(first, "GET /users/{id}");
        assert!(same(first.clone(), route_name(&Method::GET, "/users/{id}")));
        // Same length, other method or template: other names.
        assert_eq!(route_name(&Method::PUT, "/users/{id}"), "PUT /users/{id}");
        assert_eq!(route_name(&Method::GET, "/usERS/{id}"), "GET /usERS/{id}");
        assert_eq!(route_name(&Method::GET, "/users/{i}}"), "GET /users/{i}}");
        // Another thread finds the same interned string.
        let other = std::thread::spawn(|| route_name(&Method::GET, "/users/{id}"))
            .join()
            .unwrap();
        assert!(same(first, other));
    }

    #[test]
    fn more_routes_than_a_thread_caches_keep_their_names() {
        let names: Vec<String> = (0..THREAD_CACHE * 2)
            .map(|i| format!("/r{i}/{{id}}"))
            .collect();
        for _ in 0..2 {
            for n in &names {
                assert_eq!(route_name(&Method::POST, n), format!("POST {n}"));
            }
        }
        // The first ones were evicted from this thread's cache, and are
        // found again in the process-wide set, not interned twice.
        let again = route_name(&Method::POST, &names[0]);
        let other = std::thread::spawn({
            let n = names[0].clone();
            move || route_name(&Method::POST, &n)
        })
        .join()
        .unwrap();
        assert!(same(again, other));
    }

    #[test]
    fn over_long_templates_are_not_interned() {
        let long = format!("/{}", "x".repeat(MAX_NAME_LEN));
        assert!(matches!(route_name(&Method::GET, &long), Cow::Owned(_)));
    }
}
