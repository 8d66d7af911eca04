-- One car linked through several accounts (directly and through an aggregator) is one
-- vehicle with several routes: its records are found by tenant and VIN.
CREATE INDEX vehicles_by_tenant_vin ON vehicles (tenant, vin);
