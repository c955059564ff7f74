//! The `#[trace]` attribute macro of `opentracing-api`; use it through that
//! crate's re-export.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn, LitStr, ReturnType, Type};

/// Instruments a function with a span; see `opentracing_api::trace`.
#[proc_macro_attribute]
pub fn trace(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unsupported #[trace] argument; expected `name = \"...\"`"))
        }
    });
    parse_macro_input!(attr with parser);
    let func = parse_macro_input!(item as ItemFn);
    expand(func, name).into()
}

fn returns_result(ret: &ReturnType) -> bool {
    match ret {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

fn has_impl_trait(ret: &ReturnType) -> bool {
    match ret {
        ReturnType::Type(_, ty) => quote!(#ty).to_string().contains("impl "),
        ReturnType::Default => false,
    }
}

fn is_never(ret: &ReturnType) -> bool {
    matches!(ret, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)))
}

fn expand(func: ItemFn, name: Option<LitStr>) -> proc_macro2::TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    if let Some(c) = &sig.constness {
        return syn::Error::new_spanned(c, "#[trace] cannot instrument a `const fn`")
            .to_compile_error();
    }
    let name = name.map_or_else(|| sig.ident.to_string(), |n| n.value());
    let record_errors = returns_result(&sig.output);
    let annotation = match &sig.output {
        ReturnType::Type(_, ty) if !has_impl_trait(&sig.output) && !is_never(&sig.output) => {
            quote!(: #ty)
        }
        _ => quote!(),
    };
    let body = if sig.asyncness.is_some() {
        // The span is current whenever the body's future is polled; the
        // handle in the future finishes it when the future completes or is
        // dropped.
        let record = if record_errors {
            quote!(::opentracing_api::__private::record_result(&__ot_span, &__ot_result);)
        } else {
            quote!()
        };
        quote! {
            let __ot_span = ::opentracing_api::__private::start_span(#name);
            let __ot_result #annotation = ::opentracing_api::SpanFutureExt::with_span(
                async move #block,
                __ot_span.clone(),
            )
            .await;
            #record
            __ot_span.finish();
            __ot_result
        }
    } else if record_errors {
        // The result must be seen, `return`s included: run the body in a
        // closure. Locals are dropped in reverse order, so the guard leaves
        // the span before the span's last handle finishes it.
        quote! {
            let __ot_span = ::opentracing_api::__private::start_span(#name);
            let __ot_guard = __ot_span.enter();
            #[allow(clippy::redundant_closure_call)]
            let __ot_result #annotation = (move || #block)();
            ::opentracing_api::__private::record_result(&__ot_span, &__ot_result);
            __ot_result
        }
    } else {
        // Nothing to inspect: keep the body as written (so borrows it
        // returns, `-> !` and `impl Trait` all work); the span finishes when
        // its last handle, `__ot_span`, is dropped on the way out.
        quote! {
            let __ot_span = ::opentracing_api::__private::start_span(#name);
            let __ot_guard = __ot_span.enter();
            #block
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}
