//! How the outbound stack is built: each [`Policy`] (quota, breaker, retry, timeout,
//! observation) handles a request with the stack [`Below`] it, and the layers nest as
//! types ([`Layered`]) so one request is one future through the whole stack.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use keyway_adapter::{Http, TransportError};

/// One policy layer of the outbound stack: it receives each request together with the
/// rest of the stack below it, and decides what to do (send, wait, refuse, repeat).
pub trait Policy: Send + Sync + 'static {
    /// Handles one request; `inner` is the stack below this layer.
    fn handle<B: Below>(
        &self,
        inner: &B,
        req: Request<Bytes>,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send;
}

/// The stack below a layer: the transport, or more layers over it.
pub trait Below: Send + Sync + 'static {
    /// Sends one request through this part of the stack.
    fn send(
        &self,
        req: Request<Bytes>,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send;
}

impl Below for Http {
    fn send(
        &self,
        req: Request<Bytes>,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send {
        Http::send(self, req)
    }
}

/// A policy over the stack below it. Layers nest as types, so a request passes through
/// the whole stack as one future: boxing each layer's future (as one [`Http`] per
/// layer did) cost about 2,200 instructions per OEM call (BENCHMARKS.md).
pub struct Layered<P, B> {
    policy: P,
    below: B,
}

impl<P: Policy, B: Below> Layered<P, B> {
    /// `policy` over `below`.
    pub fn new(below: B, policy: P) -> Self {
        Self { policy, below }
    }

    /// One more layer over this stack.
    pub fn on<Q: Policy>(self, policy: Q) -> Layered<Q, Self> {
        Layered::new(self, policy)
    }

    /// The stack as the handle adapters call through.
    pub fn into_http(self) -> Http {
        let stack = Arc::new(self);
        Http::from_fn(move |req| {
            let stack = stack.clone();
            async move { stack.send(req).await }
        })
    }
}

impl<P: Policy, B: Below> Below for Layered<P, B> {
    fn send(
        &self,
        req: Request<Bytes>,
    ) -> impl Future<Output = Result<Response<Bytes>, TransportError>> + Send {
        self.policy.handle(&self.below, req)
    }
}

/// One policy over a boxed stack, as a boxed stack again (the layers' tests).
pub fn layer<P: Policy>(inner: Http, policy: P) -> Http {
    Layered::new(inner, policy).into_http()
}
