//! The plan store as the planner, the enactors and an operator reach it: one typed method per
//! route of [`crate::store`].

use std::net::SocketAddr;

use outage_lab_dynamodb_events::{Generation, Plan};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::store::{EndpointsMsg, PlansMsg, UseMsg};

/// Why a request to the plan store did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer, or an answer that is not the route's.
    #[error("plan store {url}: {source}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than success (and other than the ones a method expects).
    #[error("plan store {url} answered {status}: {body}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The status.
        status: StatusCode,
        /// What it said.
        body: String,
    },
}

/// What `PUT /endpoints/{name}` with `only_if_newer` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// The endpoint uses the plan now; it had this one before.
    Done,
    /// The endpoint keeps the plan it has, which is this one (not older).
    Kept(Generation),
}

/// A plan store's client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PlanStore {
    http: reqwest::Client,
    base: String,
}

impl PlanStore {
    /// The store at `addr`, asked through `http`.
    pub fn new(http: reqwest::Client, addr: SocketAddr) -> Self {
        Self {
            http,
            base: format!("http://{addr}"),
        }
    }

    /// Stores `plan` (`POST /plans`).
    pub async fn publish(&self, plan: &Plan) -> Result<(), StoreError> {
        let url = format!("{}/plans", self.base);
        let sent = self.http.post(&url).json(plan).send().await;
        expect_success(url, sent).await.map(drop)
    }

    /// The newest plan, if there is one (`GET /plans/newest`).
    pub async fn newest(&self) -> Result<Option<Plan>, StoreError> {
        self.get_if_there(format!("{}/plans/newest", self.base))
            .await
    }

    /// Plan `generation`, unless it was deleted or never stored.
    pub async fn plan(&self, generation: Generation) -> Result<Option<Plan>, StoreError> {
        self.get_if_there(format!("{}/plans/{}", self.base, generation.0))
            .await
    }

    /// The generations stored now, oldest first.
    pub async fn generations(&self) -> Result<Vec<Generation>, StoreError> {
        let url = format!("{}/plans", self.base);
        let msg: PlansMsg = self.get(url).await?;
        Ok(msg.generations)
    }

    /// Deletes plan `generation`; `false` if it was not there.
    pub async fn delete(&self, generation: Generation) -> Result<bool, StoreError> {
        let url = format!("{}/plans/{}", self.base, generation.0);
        let sent = self.http.delete(&url).send().await;
        match sent {
            Ok(r) if r.status() == StatusCode::NOT_FOUND => Ok(false),
            sent => expect_success(url, sent).await.map(|_| true),
        }
    }

    /// The plan each endpoint uses.
    pub async fn endpoints(&self) -> Result<EndpointsMsg, StoreError> {
        self.get(format!("{}/endpoints", self.base)).await
    }

    /// Endpoint `name` now uses plan `generation`, whatever it had.
    pub async fn set_endpoint(&self, name: &str, generation: Generation) -> Result<(), StoreError> {
        let msg = UseMsg {
            generation,
            only_if_newer: false,
        };
        let url = format!("{}/endpoints/{name}", self.base);
        let sent = self.http.put(&url).json(&msg).send().await;
        expect_success(url, sent).await.map(drop)
    }

    /// Endpoint `name` now uses plan `generation` if what it has is older: a compare-and-set.
    pub async fn swap_endpoint(
        &self,
        name: &str,
        generation: Generation,
    ) -> Result<Swap, StoreError> {
        let msg = UseMsg {
            generation,
            only_if_newer: true,
        };
        let url = format!("{}/endpoints/{name}", self.base);
        let sent = self.http.put(&url).json(&msg).send().await;
        match sent {
            Ok(r) if r.status() == StatusCode::CONFLICT => {
                let has: UseMsg = r.json().await.map_err(|source| unreachable(&url, source))?;
                Ok(Swap::Kept(has.generation))
            }
            sent => expect_success(url, sent).await.map(|_| Swap::Done),
        }
    }

    async fn get<T: DeserializeOwned>(&self, url: String) -> Result<T, StoreError> {
        let response = expect_success(url.clone(), self.http.get(&url).send().await).await?;
        response
            .json()
            .await
            .map_err(|source| unreachable(&url, source))
    }

    async fn get_if_there<T: DeserializeOwned>(
        &self,
        url: String,
    ) -> Result<Option<T>, StoreError> {
        match self.http.get(&url).send().await {
            Ok(r) if r.status() == StatusCode::NOT_FOUND => Ok(None),
            sent => {
                let response = expect_success(url.clone(), sent).await?;
                let value = response.json().await;
                value.map(Some).map_err(|source| unreachable(&url, source))
            }
        }
    }
}

fn unreachable(url: &str, source: reqwest::Error) -> StoreError {
    StoreError::Unreachable {
        url: url.to_owned(),
        source,
    }
}

async fn expect_success(
    url: String,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, StoreError> {
    match sent {
        Ok(r) if r.status().is_success() => Ok(r),
        Ok(r) => Err(StoreError::Refused {
            url,
            status: r.status(),
            body: r.text().await.unwrap_or_default(),
        }),
        Err(source) => Err(StoreError::Unreachable { url, source }),
    }
}
