def test_tenant_can_read_its_settings(tenant, client_for):
    response = client_for(tenant, roles=("searcher",)).get("/v1/tenant")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(tenant.id)
