//! `lamina-init`: the first process of every sandbox (see `lamina_sandbox::init`).
//!
//! It is the same code `lamina sandbox-init` runs, in a binary of its own: linked statically and
//! small, so that each sandbox's two processes hold about 100 KiB each, where two copies of the
//! server's binary held about 600 KiB each (mostly its relocated data). `lamina-server` builds it
//! and carries it inside itself; nobody installs it.

fn main() {
    lamina_sandbox::init::main()
}
