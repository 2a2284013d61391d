//! Routing by HTTP method. A request with a method that the path does not
//! take gets 405 with an `Allow` header listing the methods it does take,
//! as RFC 9110 (section 15.5.6) requires. poem's `RouteMethod` sends 405
//! without that header.

use poem::error::{MethodNotAllowedError, ResponseError};
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoEndpoint, Request, Response, RouteMethod};

/// The endpoints of one path, chosen by method. As with poem's
/// [`RouteMethod`], which does the dispatch, `HEAD` falls back to the `GET`
/// endpoint without a body.
#[derive(Default)]
pub struct Methods {
    route: RouteMethod,
    methods: Vec<Method>,
}

/// Creates the endpoints of a path that takes `GET` (and so `HEAD`).
pub fn get<E>(endpoint: E) -> Methods
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    Methods::default().get(endpoint)
}

/// Creates the endpoints of a path that takes `POST`.
pub fn post<E>(endpoint: E) -> Methods
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    Methods::default().post(endpoint)
}

impl Methods {
    /// Sets the endpoint for `GET`, which also answers `HEAD`.
    #[must_use]
    pub fn get<E>(self, endpoint: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.method(Method::GET, endpoint)
    }

    /// Sets the endpoint for `POST`.
    #[must_use]
    pub fn post<E>(self, endpoint: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.method(Method::POST, endpoint)
    }

    fn method<E>(mut self, method: Method, endpoint: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.route = self.route.method(method.clone(), endpoint);
        self.methods.push(method);
        self
    }

    /// Returns the value of the `Allow` header: the methods in the order
    /// they were set, with `HEAD` after `GET`.
    fn allow(&self) -> String {
        let mut names = Vec::new();
        for method in &self.methods {
            names.push(method.as_str());
            if *method == Method::GET && !self.methods.contains(&Method::HEAD) {
                names.push(Method::HEAD.as_str());
            }
        }
        names.join(", ")
    }
}

impl Endpoint for Methods {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        self.route.call(request).await.map_err(|error| {
            if error.is::<MethodNotAllowedError>() {
                MethodNotAllowed {
                    allow: self.allow(),
                }
                .into()
            } else {
                error
            }
        })
    }
}

/// A request with a method that the path does not take. Its response is
/// 405 with the `Allow` header and a text body; the JSON API sends the same
/// status and header with a JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("method not allowed: this path takes {allow}")]
pub struct MethodNotAllowed {
    /// The methods that the path takes, as the `Allow` header lists them.
    pub allow: String,
}

impl MethodNotAllowed {
    /// Sets the `Allow` header of `response`.
    pub fn set_allow(&self, response: &mut Response) {
        // The value is built from method names, which are valid header text.
        if let Ok(value) = HeaderValue::from_str(&self.allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
    }
}

impl ResponseError for MethodNotAllowed {
    fn status(&self) -> StatusCode {
        StatusCode::METHOD_NOT_ALLOWED
    }

    fn as_response(&self) -> Response {
        let mut response = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string());
        self.set_allow(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use poem::handler;

    use super::*;

    #[handler]
    fn text() -> &'static str {
        "body"
    }

    async fn send(endpoint: &Methods, method: Method) -> Response {
        let request = Request::builder().method(method).finish();
        endpoint.get_response(request).await
    }

    #[tokio::test]
    async fn other_method_gets_405_with_allow() {
        let endpoint = get(text).post(text);

        let response = send(&endpoint, Method::PUT).await;

        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD, POST");
        let body = response.into_body().into_string().await.unwrap();
        assert_eq!(body, "method not allowed: this path takes GET, HEAD, POST");
    }

    #[tokio::test]
    async fn post_only_path_allows_post() {
        let endpoint = post(text);

        for method in [Method::GET, Method::HEAD, Method::TRACE, Method::OPTIONS] {
            let response = send(&endpoint, method.clone()).await;
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method}"
            );
            assert_eq!(response.headers()[header::ALLOW], "POST", "{method}");
        }
    }

    #[tokio::test]
    async fn set_methods_are_served() {
        let endpoint = get(text).post(text);

        for method in [Method::GET, Method::POST] {
            let response = send(&endpoint, method.clone()).await;
            assert_eq!(response.status(), StatusCode::OK, "{method}");
            assert!(!response.headers().contains_key(header::ALLOW), "{method}");
        }
        let head = send(&endpoint, Method::HEAD).await;
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.into_body().into_bytes().await.unwrap().is_empty());
    }
}
