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

fn expand(func: ItemFn, name: Option<LitStr>) -> proc_macro2::TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = name.map_or_else(|| sig.ident.to_string(), |n| n.value());
    let record = if returns_result(&sig.output) {
        quote!(::opentracing_api::__private::record_result(&__ot_span, &__ot_result);)
    } else {
        quote!()
    };
    let annotation = match &sig.output {
        ReturnType::Type(_, ty) if !has_impl_trait(&sig.output) => quote!(: #ty),
        ReturnType::Default => quote!(: ()),
        ReturnType::Type(..) => quote!(),
    };
    let body = if sig.asyncness.is_some() {
        quote! {
            let __ot_result #annotation = ::opentracing_api::SpanFutureExt::with_span(
                async move #block,
                __ot_span.clone(),
            )
            .await;
        }
    } else {
        quote! {
            let __ot_result #annotation = {
                let __ot_guard = __ot_span.enter();
                #[allow(clippy::redundant_closure_call)]
                let __ot_result = (|| #block)();
                ::std::mem::drop(__ot_guard);
                __ot_result
            };
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let __ot_span = ::opentracing_api::__private::start_span(#name);
            #body
            #record
            __ot_span.finish();
            __ot_result
        }
    }
}
